"""Diagnosis: the fields of the invoice list and the invoice detail, and the timestamps of every answer."""

from __future__ import annotations

from tap_invoiz.diagnose.checks import Checks
from tap_invoiz.diagnose.contract import (
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
from tap_invoiz.diagnose.forms import census, json_type, name_list, plural
from tap_invoiz.diagnose.probes import Probe
from tap_invoiz.schemas import INVOICE_FIELDS


class FieldChecks(Checks):
    """The field sections of the diagnosis (a part of :class:`~tap_invoiz.diagnose.run.Diagnosis`)."""

    def _invoice_detail_object(self, detail: Probe | None) -> dict | None:
        section = "Invoice detail"
        say = self.verdict("invoice_detail.envelope", section, "Detail envelope")
        if detail is None:
            say(SKIP, "no invoice in this account")
            return None
        data = detail.data
        if not detail.ok or not isinstance(data, dict):
            say(
                FAIL,
                f"`GET invoice/{{id}}` → HTTP {detail.status}, `data` is "
                f"{json_type(data) if detail.json_ok else 'not JSON'}: the tap cannot confirm deletions or read "
                "payments. Send us this report",
            )
            return None
        if isinstance(data.get("invoice"), dict):
            others = sorted(name for name in data if name != "invoice")
            say(OK, "`data.invoice`" + (f" (beside {name_list(others)})" if others else "") + ", as the contract says")
            return data["invoice"]
        if "id" in data:
            say(
                WARN,
                "the invoice is directly under `data` (not `data.invoice`). Handled: the tap uses `data.invoice` "
                "if present, else `data`",
            )
            return data
        say(
            FAIL,
            f"`data` holds {name_list(sorted(data))} but no invoice: the tap cannot confirm deletions or read "
            "payments. Send us this report",
        )
        return None

    def _invoice_fields(self, invoices: Probe, invoice: dict | None) -> None:
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
        # fields the tap has a column for are not extra, even where the contract has them on the detail only
        extra = sorted(top - set(INVOICE_LIST_EXPECTED) - set(INVOICE_LIST_MAYBE) - schema - set(TIMESTAMP_FIELDS))
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
        self.unknown_fields(
            "invoice_list.unknown", section, extra, "kept verbatim in `extra_fields` (and in the fingerprint)"
        )
        self._field_table(
            section,
            "Invoice list rows",
            total,
            fields,
            INVOICE_LIST_EXPECTED,
            (*INVOICE_LIST_MAYBE, *schema, *INVOICE_KNOWN),
            schema,
        )

    def _invoice_list_presence(self, missing: list[str], partial: list[str]) -> None:
        """Whether every list row carries the list fields of the contract."""
        section = "Invoice list"
        say = self.verdict("invoice_list.fields", section, "List fields")
        if "id" in missing:
            say(FAIL, "list rows have no `id`: the tap cannot key invoices. Send us this report")
        elif missing or partial:
            text = []
            if missing:
                text.append(f"list rows lack {name_list(missing)}")
            if partial:
                text.append(f"only some rows carry {name_list(partial)}")
            say(
                WARN,
                "; ".join(text) + ". Handled: those columns stay empty (the tap reads list rows); nothing "
                "else depends on them",
            )
        else:
            say(OK, f"every row carries the {len(INVOICE_LIST_EXPECTED)} list fields of the contract")

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
        self.unknown_fields(
            "invoice_detail.unknown", section, extra, "kept in `extra_fields` when a detail row is loaded"
        )
        self._field_table(
            section, "Invoice detail (one invoice)", total, fields, INVOICE_DETAIL_EXPECTED, INVOICE_KNOWN, schema
        )

    def _timestamps(self, rows: list[dict], invoice: dict | None, contacts: list[dict]) -> None:
        say = self.verdict("invoice_list.timestamps", "Invoice list", "createdAt / updatedAt")
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
            say(
                WARN,
                "; ".join(where) + " (the contract found none). Handled: kept in `extra_fields` and part of the "
                "fingerprint; `updatedAt` could later become a bookmark",
            )
        else:
            say(OK, "absent, as the contract says: the tap detects changes by fingerprint")

    # -- filters ---------------------------------------------------------------------------------------------------
