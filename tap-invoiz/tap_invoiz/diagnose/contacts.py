"""Diagnosis: the contacts — their fields, e-mail (the product's key), country key and detail envelope."""

from __future__ import annotations

from collections import Counter

from tap_invoiz.diagnose.checks import Checks
from tap_invoiz.diagnose.contract import CONTACT_EXPECTED, CONTACT_KNOWN, FAIL, OK, SKIP, TIMESTAMP_FIELDS, WARN
from tap_invoiz.diagnose.forms import census, counts_text, name_list, plural, values_at
from tap_invoiz.diagnose.probes import Probe
from tap_invoiz.schemas import CONTACT_FIELDS


class ContactChecks(Checks):
    """The Contacts section of the diagnosis (a part of :class:`~tap_invoiz.diagnose.run.Diagnosis`)."""

    def _contacts(self, contacts: Probe, detail: Probe | None, contact: dict | None) -> None:
        section = "Contacts"
        schema = {f.api for f in CONTACT_FIELDS}
        rows = contacts.rows
        total, fields = census(rows)
        if not total:
            self.add("contacts.fields", section, SKIP, "Contact fields", "no contacts in this account")
            self.add("contacts.email", section, SKIP, "E-mail", "no contacts in this account")
            self.add("contacts.country_key", section, SKIP, "Country key", "no contacts in this account")
            return
        self._contact_fields(fields)
        self._contact_email(rows, total, contact)
        self._contact_country(rows, total)
        if detail is not None:
            self._contact_detail(detail, contact)
        self._field_table(section, "Contact list rows", total, fields, CONTACT_EXPECTED, CONTACT_KNOWN, schema)

    def _contact_fields(self, fields: dict[str, Counter]) -> None:
        section = "Contacts"
        say = self.verdict("contacts.fields", section, "Contact fields")
        top = {path for path in fields if "." not in path}
        missing = [name for name in CONTACT_EXPECTED if name not in top and name != "email"]
        extra = sorted(top - set(CONTACT_EXPECTED) - set(CONTACT_KNOWN) - set(TIMESTAMP_FIELDS))
        if "id" in missing:
            say(FAIL, "contact rows have no `id`: the tap cannot key contacts. Send us this report")
        elif missing:
            say(WARN, f"rows lack {name_list(missing)}. Handled: those columns stay empty")
        else:
            say(OK, "every field of the contract is there")
        self.unknown_fields(
            "contacts.unknown", section, extra, "kept verbatim in `extra_fields` (and in the fingerprint)"
        )

    def _contact_email(self, rows: list[dict], total: int, contact: dict | None) -> None:
        """e-mail: a customer is an e-mail address (the product's key)."""
        section = "Contacts"
        say = self.verdict("contacts.email", section, "E-mail")
        with_key = sum(1 for row in rows if "email" in row)
        filled = sum(1 for row in rows if isinstance(row.get("email"), str) and row["email"].strip())
        person_emails = sum(
            1 for value in values_at(rows, "contactPersons[].email") if isinstance(value, str) and value.strip()
        )
        detail_has = contact is not None and "email" in contact
        if with_key:
            say(OK, f"`email` on {with_key} of {plural(total, 'row')}, non-empty on {filled}")
        else:
            where = (
                "the contact detail has it, the list rows do not"
                if detail_has
                else "neither the list rows nor the contact detail have it"
            )
            hint = f"; {person_emails} contact persons carry one" if person_emails else ""
            say(
                FAIL,
                f"no `email` on contacts ({where}{hint}): invoices cannot be tied to customers by e-mail, the "
                "product's key (every invoice would be unassigned). Send us this report; the tap must read the "
                "e-mail from where invoiz keeps it",
            )

    def _contact_country(self, rows: list[dict], total: int) -> None:
        """address.countryIso vs isoCountry."""
        section = "Contacts"
        say = self.verdict("contacts.country_key", section, "Country key")
        forms: Counter = Counter()
        for row in rows:
            address = row.get("address")
            if not isinstance(address, dict):
                forms["no address object"] += 1
            elif "countryIso" in address:
                forms["countryIso"] += 1
            elif "isoCountry" in address:
                forms["isoCountry"] += 1
            else:
                forms["neither"] += 1
        shown = counts_text(forms)
        if forms["isoCountry"]:
            say(WARN, f"`address.isoCountry` ({shown}). Handled: country_iso falls back to `isoCountry`")
        elif forms["countryIso"] == total:
            say(OK, "`address.countryIso` on every row")
        else:
            say(WARN, f"{shown}: country_iso stays empty where neither key is sent")

    def _contact_detail(self, detail: Probe, contact: dict | None) -> None:
        section = "Contacts"
        say = self.verdict("contacts.detail_envelope", section, "Contact detail envelope")
        if contact is not None and "id" in contact:
            say(OK, "the customer directly under `data`, as the contract says")
        else:
            inner = sorted(contact) if isinstance(contact, dict) else []
            say(
                WARN,
                f"`GET customer/{{id}}` → HTTP {detail.status}"
                + (f", `data` holds {name_list(inner)}" if inner else "")
                + ": used only to confirm a contact's deletion; a contact missing from the list is then "
                "kept, not tombstoned. Send us this report",
            )
