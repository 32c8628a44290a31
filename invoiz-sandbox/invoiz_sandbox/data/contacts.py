"""Contacts of the dataset: generated on demand from the seed, materialised when a scenario changes them."""

from __future__ import annotations

from .values import (
    AFFIXES,
    CATEGORIES,
    CITIES_AT,
    CITIES_CH,
    COUNTRY_LABEL,
    CUSTOMER_NUMBER_BASE,
    slug,
    timestamp_text,
)


class ContactRows:
    """Generation of contact rows and of the customer snapshot an invoice carries (part of :class:`Dataset`)."""

    def _contact_core(self, idx: int):
        rng = self._rng(2, idx)
        kind = "company" if rng.random() < 0.6 else "person"
        female = rng.random() < 0.5
        first = rng.choice(self.p_first_f if female else self.p_first_m)
        last = rng.choice(self.p_last)
        company = rng.choice(self.p_company) if kind == "company" else None
        if idx == 5:  # always present: umlaut and ß in a person's name
            kind, female, first, last, company = "person", False, "Jürgen", "Weiß", None
        return rng, kind, female, first, last, company

    def contact_name(self, idx: int) -> str:
        if idx in self.c_over:
            return self.c_over[idx].get("name") or ""
        _, kind, _, first, last, company = self._contact_core(idx)
        return company if kind == "company" else f"{first} {last}"

    def _base_email(self, idx: int) -> str:
        _, kind, _, first, last, company = self._contact_core(idx)
        if kind == "company":
            dom = slug(company.split(" ")[0])[:20] or "firma"
            return f"{'info' if idx % 3 else 'buchhaltung'}@{dom}.de"
        return f"{slug(first)}.{slug(last)}@{self.p_mail[idx % len(self.p_mail)]}"

    def _gen_contact(self, idx: int, snapshot_only: bool = False) -> dict:
        """Generate a base contact. Fields an invoice snapshot needs come from the core RNG stream; the rest
        (e-mail quirks, phones, …) from a second stream, so ``snapshot_only=True`` is cheap."""
        rng, kind, female, first, last, company = self._contact_core(idx)
        cid = self.con_id(idx)
        country = "DE" if rng.random() < 0.9 else ("AT" if rng.random() < 0.6 else "CH")
        zc, city = rng.choice(self.p_city if country == "DE" else CITIES_AT if country == "AT" else CITIES_CH)
        street = rng.choice(self.p_street)
        if idx == 5:
            country, zc, city, street = "DE", "50667", "Köln", "Schloßallee 7a"
        title = "Dr." if rng.random() < 0.08 else ""
        affix = rng.choice(AFFIXES) if kind == "company" else None
        domain = (slug(company.split(" ")[0])[:20] or "firma") + ".de" if kind == "company" else ""
        persons = []
        if kind == "company":
            for k in range(rng.choice((0, 1, 1, 2, 3))):
                pf = rng.random() < 0.5
                fn = rng.choice(self.p_first_f if pf else self.p_first_m)
                ln = rng.choice(self.p_last)
                pmail = "" if rng.random() < 0.25 else f"{slug(fn)[0]}.{slug(ln)}@{domain}"
                persons.append(
                    {
                        "id": cid * 10 + k + 1,
                        "salutation": "Frau" if pf else "Herr",
                        "title": "Dr." if rng.random() < 0.05 else "",
                        "firstName": fn,
                        "lastName": ln,
                        "name": f"{fn} {ln}",
                        "email": pmail,
                        "phone1": "",
                        "phone2": "",
                        "mobile": "",
                        "fax": "",
                        "job": "",
                        "birthday": None,
                        "isMainContact": k == 0,
                    }
                )
        c = {
            "id": cid,
            "number": str(CUSTOMER_NUMBER_BASE + idx + 1),
            "kind": kind,
            "name": company if kind == "company" else f"{first} {last}",
            "companyName": company,
            "companyNameAffix": affix,
            "salutation": "" if kind == "company" else ("Frau" if female else "Herr"),
            "title": "" if kind == "company" else title,
            "firstName": "" if kind == "company" else first,
            "lastName": "" if kind == "company" else last,
            "address": {"street": street, "zipCode": zc, "city": city, "countryIso": country},
            "contactPersons": persons,
        }
        if snapshot_only:
            return c
        r2 = self._rng(6, idx)
        q = r2.random()
        # the first contacts always cover the e-mail cases, whatever the seed (tests rely on them)
        q = {0: 0.5, 1: 0.25, 2: 0.05, 3: 0.15, 4: 0.05}.get(idx, q)
        if q < 0.12:  # no e-mail at all
            email = "" if r2.random() < 0.5 else None
            email = {2: None, 4: ""}.get(idx, email)
        elif q < 0.20 and idx > 0:  # shares the e-mail of an earlier contact (maybe other casing)
            other = self._base_email(0 if idx == 3 else r2.randrange(idx))
            email = other if r2.random() < 0.5 and idx != 3 else other.capitalize()
        elif q < 0.30:  # capitals and stray spaces
            base = self._base_email(idx)
            email = r2.choice([f" {base}", f"{base} ", base.title(), f"  {base.upper()} "])
        else:
            email = self._base_email(idx)
        for p in persons:
            p["phone1"] = r2.choice(self.p_phone)
            p["mobile"] = r2.choice(self.p_phone) if r2.random() < 0.4 else ""
            p["job"] = r2.choice(self.p_job)
        created = self.today.toordinal() - 30 - (self.nc_base - idx) * 3650 // max(1, self.nc_base)
        contact_persons = c.pop("contactPersons")
        c.update(
            {
                "email": email,
                "phone1": r2.choice(self.p_phone) if r2.random() < 0.7 else "",
                "phone2": r2.choice(self.p_phone) if r2.random() < 0.1 else "",
                "mobile": r2.choice(self.p_phone) if r2.random() < 0.35 else "",
                "fax": r2.choice(self.p_phone) if r2.random() < 0.1 else "",
                "website": f"https://www.{domain}" if kind == "company" and r2.random() < 0.5 else "",
                "contactPersons": contact_persons,
                "discount": 0.0 if r2.random() < 0.9 else float(r2.choice((2, 3, 5))),
                "payConditionId": None if r2.random() < 0.5 else 1,
                "notes": "" if r2.random() < 0.8 else "<p>Bitte Rechnungen nur per E-Mail senden.</p>",
                "notesAlert": False,
                "category": r2.choice(CATEGORIES),
                "vatId": r2.choice(self.p_vat) if kind == "company" and r2.random() < 0.5 else "",
                "type": "customer",
                "_created": timestamp_text(created, 8 * 3600 + r2.randrange(36000)),
            }
        )
        return c

    def contact(self, idx: int) -> dict:
        """Canonical contact dict (shared for materialised rows: do not mutate the result)."""
        if idx in self.c_over:
            return self.c_over[idx]
        return self._gen_contact(idx)

    def _materialise_contact(self, idx: int) -> dict:
        if idx not in self.c_over:
            c = self._gen_contact(idx)
            c["_updated"] = c["_created"]
            c["_m"] = True
            self.c_over[idx] = c
        return self.c_over[idx]

    def customer_snapshot(self, contact: dict, draws: tuple | None = None) -> dict:
        a = contact.get("address") or {}
        snap = {
            "id": contact["id"],
            "kind": contact["kind"],
            "number": contact["number"],
            "name": contact["name"],
            "street": a.get("street", ""),
            "zipCode": a.get("zipCode", ""),
            "city": a.get("city", ""),
            "country": COUNTRY_LABEL.get(a.get("countryIso"), a.get("countryIso", "")),
            "countryIso": a.get("countryIso", ""),
            "salutation": contact.get("salutation", ""),
            "title": contact.get("title", ""),
            "firstName": contact.get("firstName", ""),
            "lastName": contact.get("lastName", ""),
            "description": "",
        }
        if contact["kind"] == "company":
            snap["companyName"] = contact.get("companyName")
            snap["companyNameAffix"] = contact.get("companyNameAffix")
            persons = contact.get("contactPersons") or []
            if persons and draws is not None and draws[0] < 0.4:
                p = persons[0]
                snap["contact"] = {
                    "id": p["id"],
                    "salutation": p["salutation"],
                    "title": p["title"],
                    "firstName": p["firstName"],
                    "lastName": p["lastName"],
                    "name": p["name"],
                }
                if p.get("email") and draws[1] < 0.6:
                    snap["contact"]["email"] = p["email"]
        return snap
