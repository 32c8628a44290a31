"""Scenario actions on contacts, and the page-shift helper that inserts invoices at the start of an order."""

from __future__ import annotations

import datetime as dt

from .values import (
    CUSTOMER_NUMBER_BASE,
    SandboxError,
)


class ContactActions:
    """What an invoiz user does to contacts (part of :class:`Dataset`)."""

    _ALIASES = {
        "email": "email",
        "first_name": "firstName",
        "last_name": "lastName",
        "company_name": "companyName",
        "company_name_affix": "companyNameAffix",
        "zip_code": "zipCode",
        "country_iso": "countryIso",
        "vat_id": "vatId",
        "notes_alert": "notesAlert",
        "pay_condition_id": "payConditionId",
        "contact_persons": "contactPersons",
    }
    _ADDRESS_KEYS = ("street", "zipCode", "city", "countryIso")

    def _apply_contact_fields(self, c: dict, fields: dict):
        for k, v in fields.items():
            k = self._ALIASES.get(k, k)
            if k in ("id", "number") and "id" in c:
                raise SandboxError(f"{k} cannot be changed", field=k, code="NOT_ALLOWED")
            if k in self._ADDRESS_KEYS:
                c.setdefault("address", {})[k] = v
            elif k == "address" and isinstance(v, dict):
                c.setdefault("address", {}).update(v)
            else:
                c[k] = v
        if c.get("kind") == "company":
            c["name"] = c.get("companyName") or c.get("name") or ""
        elif any(k in fields for k in ("firstName", "lastName", "first_name", "last_name")) or not c.get("name"):
            c["name"] = f"{c.get('firstName') or ''} {c.get('lastName') or ''}".strip()

    def create_contact(self, kind="person", **fields) -> int:
        if kind not in ("company", "person"):
            raise SandboxError("kind must be company or person", field="kind")
        with self.lock:
            idx = self.nc
            now = self.now_iso()
            c = {
                "id": self.con_id(idx),
                "number": str(CUSTOMER_NUMBER_BASE + idx + 1),
                "kind": kind,
                "name": "",
                "companyName": None,
                "companyNameAffix": None,
                "salutation": "",
                "title": "",
                "firstName": "",
                "lastName": "",
                "address": {"street": "", "zipCode": "", "city": "", "countryIso": "DE"},
                "email": None,
                "phone1": "",
                "phone2": "",
                "mobile": "",
                "fax": "",
                "website": "",
                "contactPersons": [],
                "discount": 0.0,
                "payConditionId": None,
                "notes": "",
                "notesAlert": False,
                "category": "",
                "vatId": "",
                "type": "customer",
                "_created": now,
                "_updated": now,
                "_m": True,
            }
            if kind == "company" and not (fields.get("companyName") or fields.get("company_name")):
                fields.setdefault("companyName", "Neue Firma GmbH")
            if kind == "person" and not any(k in fields for k in ("firstName", "first_name", "lastName", "last_name")):
                fields.setdefault("firstName", "Erika")
                fields.setdefault("lastName", "Mustermann")
            self._apply_contact_fields(c, fields)
            self.c_over[idx] = c
            self.c_deleted.append(0)
            self.nc += 1
            self._touch()
            return c["id"]

    def update_contact(self, contact_id, **fields):
        with self.lock:
            idx = self.con_idx(contact_id)
            c = self._materialise_contact(idx)
            self._apply_contact_fields(c, fields)
            c["_updated"] = self.now_iso()
            self._touch()
            return c["id"]

    def set_contact_email(self, contact_id, email):
        return self.update_contact(contact_id, email=email)

    def delete_contact(self, contact_id):
        with self.lock:
            idx = self.con_idx(contact_id)
            self.c_deleted[idx] = 1
            self._touch()
            return int(contact_id)

    # ------------------------------------------------------------------ page-shift helper
    def insert_before(self, order_by, desc, count):
        """Create ``count`` invoices that sort at the very beginning of the given (orderBy, desc) order."""
        ids = []
        for _ in range(int(count)):
            kw = {}
            ob = order_by or "id"
            first_day = min(self.day) if self.n else self.today.toordinal()
            if ob in ("date", "dueToDate"):
                kw["date"] = self.today + dt.timedelta(days=1) if desc else dt.date.fromordinal(first_day - 1)
                kw["due_days"] = 60 if desc else 0
            elif ob in ("totalNet", "totalGross"):
                kw["net"] = 999999.0 if desc else 0.01
            # id / number / name / type: a new invoice sorts first only when desc (ids grow)
            ids.append(self.create_invoice(state="locked", **kw))
        return ids
