"""Diagnosis: the fields of the invoice list, the invoice detail and the contacts, and their timestamps."""

from __future__ import annotations

import typing as t
from collections import Counter

from tap_invoiz.diagnose.checks import Checks
from tap_invoiz.diagnose.contract import (
    CONTACT_EXPECTED,
    CONTACT_KNOWN,
    FAIL,
    INVOICE_DETAIL_EXPECTED,
    INVOICE_KNOWN,
    INVOICE_LIST_EXPECTED,
    INVOICE_LIST_MAYBE,
    OK,
    SKIP,
    TIMESTAMP_FIELDS,
    WARN,
)
from tap_invoiz.diagnose.forms import census, json_type, name_list, plural, type_list, values_at
from tap_invoiz.diagnose.probes import Probe
from tap_invoiz.schemas import CONTACT_FIELDS, INVOICE_FIELDS

if t.TYPE_CHECKING:
    from collections.abc import Iterable


class FieldChecks(Checks):
    """The field sections of the diagnosis (a part of :class:`~tap_invoiz.diagnose.run.Diagnosis`)."""

    def _invoice_detail_object(self, detail: Probe | None) -> dict | None:
        section = "Invoice detail"
        if detail is None:
            self.add("invoice_detail.envelope", section, SKIP, "Detail envelope", "no invoice in this account")
            return None
        data = detail.data
        if not detail.ok or not isinstance(data, dict):
            self.add(
                "invoice_detail.envelope",
                section,
                FAIL,
                "Detail envelope",
                f"`GET invoice/{{id}}` → HTTP {detail.status}, `data` is "
                f"{json_type(data) if detail.json_ok else 'not JSON'}: the tap cannot confirm deletions or read "
                "payments. Send us this report",
            )
            return None
        if isinstance(data.get("invoice"), dict):
            others = sorted(name for name in data if name != "invoice")
            self.add(
                "invoice_detail.envelope",
                section,
                OK,
                "Detail envelope",
                "`data.invoice`" + (f" (beside {name_list(others)})" if others else "") + ", as the contract says",
            )
            return data["invoice"]
        if "id" in data:
            self.add(
                "invoice_detail.envelope",
                section,
                WARN,
                "Detail envelope",
                "the invoice is directly under `data` (not `data.invoice`). Handled: the tap uses `data.invoice` "
                "if present, else `data`",
            )
            return data
        self.add(
            "invoice_detail.envelope",
            section,
            FAIL,
            "Detail envelope",
            f"`data` holds {name_list(sorted(data))} but no invoice: the tap cannot confirm deletions or read "
            "payments. Send us this report",
        )
        return None

    def _field_table(
        self,
        section: str,
        title: str,
        total: int,
        fields: dict[str, Counter],
        expected: Iterable[str],
        known: Iterable[str],
        schema: set[str],
    ) -> None:
        expected, known = set(expected), set(known)
        lines = [
            f"<details><summary>{title}: fields seen on {plural(total, 'object')} (JSON types, no values)</summary>",
            "",
            "| field | JSON types | on | contract |",
            "|---|---|---|---|",
        ]
        for path in sorted(fields, key=lambda p: (p.split(".")[0].split("[")[0].lower(), p)):
            counter = fields[path]
            top = "." not in path
            if not top:
                note = ""
            elif path in expected:
                note = "expected"
            elif path in known:
                note = "known, optional"
            else:
                note = "**not in the contract**"
            if top and path not in schema:
                note += " → `extra_fields`"
            lines.append(f"| `{path}` | {type_list(counter)} | {sum(counter.values())} | {note} |")
        for name in sorted(expected - set(fields)):
            lines.append(f"| `{name}` | — | 0 | **expected, missing** |")
        lines += ["", "</details>"]
        self.table(section, lines)

    def _invoice_fields(self, invoices: Probe, detail: Probe | None, invoice: dict | None) -> None:
        schema = {f.api for f in INVOICE_FIELDS}
        self._invoice_list_fields(invoices.rows, schema)
        if invoice is not None:
            self._invoice_detail_fields(invoice, schema)

    def _invoice_list_fields(self, rows: list[dict], schema: set[str]) -> None:
        section = "Invoice list"
        total, fields = census(rows)
        if not total:
            self.add("invoice_list.fields", section, SKIP, "List fields", "no invoices in this account")
            return
        top = {path for path in fields if "." not in path}
        missing = [name for name in INVOICE_LIST_EXPECTED if name not in top]
        partial = [name for name in INVOICE_LIST_EXPECTED if name in top and sum(fields[name].values()) < total]
        extra = sorted(top - set(INVOICE_LIST_EXPECTED) - set(INVOICE_LIST_MAYBE) - set(TIMESTAMP_FIELDS))
        maybe = [name for name in INVOICE_LIST_MAYBE if name in top]
        self._invoice_list_presence(missing, partial)
        if maybe:
            self.add(
                "invoice_list.detail_fields",
                section,
                WARN,
                "Detail fields on list rows",
                f"list rows carry {name_list(maybe)} (the contract expected them on the detail only). Handled: "
                "loaded into their columns and part of each row's fingerprint",
            )
        else:
            self.add(
                "invoice_list.detail_fields",
                section,
                OK,
                "Detail fields on list rows",
                "no `positions`, `payments` or `history` on list rows, as the contract says",
            )
        if extra:
            self.add(
                "invoice_list.unknown",
                section,
                WARN,
                "Fields not in the contract",
                f"{name_list(extra)}. Handled: kept verbatim in `extra_fields` (and in the fingerprint)",
            )
        else:
            self.add("invoice_list.unknown", section, OK, "Fields not in the contract", "none")
        self._field_table(
            section,
            "Invoice list rows",
            total,
            fields,
            INVOICE_LIST_EXPECTED,
            (*INVOICE_LIST_MAYBE, *INVOICE_KNOWN),
            schema,
        )

    def _invoice_list_presence(self, missing: list[str], partial: list[str]) -> None:
        """Whether every list row carries the list fields of the contract."""
        section = "Invoice list"
        if "id" in missing:
            self.add(
                "invoice_list.fields",
                section,
                FAIL,
                "List fields",
                "list rows have no `id`: the tap cannot key invoices. Send us this report",
            )
        elif missing or partial:
            text = []
            if missing:
                text.append(f"list rows lack {name_list(missing)}")
            if partial:
                text.append(f"only some rows carry {name_list(partial)}")
            self.add(
                "invoice_list.fields",
                section,
                WARN,
                "List fields",
                "; ".join(text) + ". Handled: those columns stay empty (the tap reads list rows); nothing "
                "else depends on them",
            )
        else:
            self.add(
                "invoice_list.fields",
                section,
                OK,
                "List fields",
                f"every row carries the {len(INVOICE_LIST_EXPECTED)} list fields of the contract",
            )

    def _invoice_detail_fields(self, invoice: dict, schema: set[str]) -> None:
        section = "Invoice detail"
        total, fields = census([invoice])
        top = set(fields) & {path for path in fields if "." not in path}
        missing = [name for name in INVOICE_DETAIL_EXPECTED if name not in top]
        extra = sorted(top - set(INVOICE_DETAIL_EXPECTED) - set(INVOICE_KNOWN) - set(TIMESTAMP_FIELDS))
        if "payments" not in top or not isinstance(invoice.get("payments"), list):
            self.add(
                "invoice_detail.payments",
                section,
                WARN,
                "Payments",
                "the detail has no `payments` array: the stream invoice_payments stays empty; the invoices "
                "are not affected",
            )
        else:
            self.add(
                "invoice_detail.payments",
                section,
                OK,
                "Payments",
                f"`payments` is an array ({plural(len(invoice['payments']), 'payment')} on the invoice read)",
            )
        if missing:
            self.add(
                "invoice_detail.fields",
                section,
                WARN,
                "Detail fields",
                f"the detail lacks {name_list(missing)}. Handled: the tap reads list rows; the detail only confirms "
                "deletions and gives payments",
            )
        else:
            self.add(
                "invoice_detail.fields",
                section,
                OK,
                "Detail fields",
                f"all {len(INVOICE_DETAIL_EXPECTED)} detail fields of the contract",
            )
        if extra:
            self.add(
                "invoice_detail.unknown",
                section,
                WARN,
                "Fields not in the contract",
                f"{name_list(extra)}. Handled: kept in `extra_fields` when a detail row is loaded",
            )
        else:
            self.add("invoice_detail.unknown", section, OK, "Fields not in the contract", "none")
        self._field_table(
            section, "Invoice detail (one invoice)", total, fields, INVOICE_DETAIL_EXPECTED, INVOICE_KNOWN, schema
        )

    # -- contacts --------------------------------------------------------------------------------------------------

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
        top = {path for path in fields if "." not in path}
        missing = [name for name in CONTACT_EXPECTED if name not in top and name != "email"]
        extra = sorted(top - set(CONTACT_EXPECTED) - set(CONTACT_KNOWN) - set(TIMESTAMP_FIELDS))
        if "id" in missing:
            self.add(
                "contacts.fields",
                section,
                FAIL,
                "Contact fields",
                "contact rows have no `id`: the tap cannot key contacts. Send us this report",
            )
        elif missing:
            self.add(
                "contacts.fields",
                section,
                WARN,
                "Contact fields",
                f"rows lack {name_list(missing)}. Handled: those columns stay empty",
            )
        else:
            self.add("contacts.fields", section, OK, "Contact fields", "every field of the contract is there")
        if extra:
            self.add(
                "contacts.unknown",
                section,
                WARN,
                "Fields not in the contract",
                f"{name_list(extra)}. Handled: kept verbatim in `extra_fields` (and in the fingerprint)",
            )
        else:
            self.add("contacts.unknown", section, OK, "Fields not in the contract", "none")

    def _contact_email(self, rows: list[dict], total: int, contact: dict | None) -> None:
        """e-mail: a customer is an e-mail address (the product's key)."""
        section = "Contacts"
        with_key = sum(1 for row in rows if "email" in row)
        filled = sum(1 for row in rows if isinstance(row.get("email"), str) and row["email"].strip())
        person_emails = sum(
            1 for value in values_at(rows, "contactPersons[].email") if isinstance(value, str) and value.strip()
        )
        detail_has = contact is not None and "email" in contact
        if with_key:
            self.add(
                "contacts.email",
                section,
                OK,
                "E-mail",
                f"`email` on {with_key} of {plural(total, 'row')}, non-empty on {filled}",
            )
        else:
            where = (
                "the contact detail has it, the list rows do not"
                if detail_has
                else "neither the list rows nor the contact detail have it"
            )
            hint = f"; {person_emails} contact persons carry one" if person_emails else ""
            self.add(
                "contacts.email",
                section,
                FAIL,
                "E-mail",
                f"no `email` on contacts ({where}{hint}): invoices cannot be tied to customers by e-mail, the "
                "product's key (every invoice would be unassigned). Send us this report; the tap must read the "
                "e-mail from where invoiz keeps it",
            )

    def _contact_country(self, rows: list[dict], total: int) -> None:
        """address.countryIso vs isoCountry."""
        section = "Contacts"
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
        shown = ", ".join(f"{name} {number}" for name, number in forms.most_common())
        if forms["isoCountry"]:
            self.add(
                "contacts.country_key",
                section,
                WARN,
                "Country key",
                f"`address.isoCountry` ({shown}). Handled: country_iso falls back to `isoCountry`",
            )
        elif forms["countryIso"] == total:
            self.add("contacts.country_key", section, OK, "Country key", "`address.countryIso` on every row")
        else:
            self.add(
                "contacts.country_key",
                section,
                WARN,
                "Country key",
                f"{shown}: country_iso stays empty where neither key is sent",
            )

    def _contact_detail(self, detail: Probe, contact: dict | None) -> None:
        section = "Contacts"
        if contact is not None and "id" in contact:
            self.add(
                "contacts.detail_envelope",
                section,
                OK,
                "Contact detail envelope",
                "the customer directly under `data`, as the contract says",
            )
        else:
            inner = sorted(contact) if isinstance(contact, dict) else []
            self.add(
                "contacts.detail_envelope",
                section,
                WARN,
                "Contact detail envelope",
                f"`GET customer/{{id}}` → HTTP {detail.status}"
                + (f", `data` holds {name_list(inner)}" if inner else "")
                + ": used only to confirm a contact's deletion; a contact missing from the list is then "
                "kept, not tombstoned. Send us this report",
            )

    def _timestamps(self, rows: list[dict], invoice: dict | None, contacts: list[dict]) -> None:
        where = []
        for label, objects in (
            ("invoice list rows", rows),
            ("invoice detail", [invoice] if invoice else []),
            ("contacts", contacts),
        ):
            names = sorted({name for obj in objects for name in TIMESTAMP_FIELDS if name in obj})
            if names:
                where.append(f"{name_list(names)} on {label}")
        if where:
            self.add(
                "invoice_list.timestamps",
                "Invoice list",
                WARN,
                "createdAt / updatedAt",
                "; ".join(where) + " (the contract found none). Handled: kept in `extra_fields` and part of the "
                "fingerprint; `updatedAt` could later become a bookmark",
            )
        else:
            self.add(
                "invoice_list.timestamps",
                "Invoice list",
                OK,
                "createdAt / updatedAt",
                "absent, as the contract says: the tap detects changes by fingerprint",
            )

    # -- filters ---------------------------------------------------------------------------------------------------
