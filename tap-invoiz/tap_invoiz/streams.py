"""Stream classes of tap-invoiz (their columns: :mod:`tap_invoiz.schemas`).

* ``invoices`` — rows of ``GET invoice`` (key ``account, id``)
* ``contacts`` — rows of ``GET customer`` (key ``account, id``)
* ``invoice_payments`` — ``payments[]`` of ``GET invoice/{id}``, child of ``invoices`` (key ``account, invoice_id, id``);
  detail requests are made only when it is selected, and then only for new or changed invoices.
"""

from __future__ import annotations

import logging
import typing as t

from singer_sdk import Stream
from singer_sdk.streams import RESTStream

from tap_invoiz import listing
from tap_invoiz.client import InvoizStream
from tap_invoiz.records import (
    RecordMapper,
    berlin_date_or_none,
    first_non_empty,
    invoice_status,
)
from tap_invoiz.responses import is_not_found, response_body
from tap_invoiz.schemas import (
    CONTACT_FIELDS,
    CONTACTS_SCHEMA,
    INVOICE_FIELDS,
    INVOICES_SCHEMA,
    PAYMENT_FIELDS,
    PAYMENTS_SCHEMA,
    SYNC_STATUS_SCHEMA,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    import requests
    from singer_sdk.helpers.types import Context

    from tap_invoiz.ledger import Ledger


def _extra(extra: dict) -> dict | None:
    return extra or None


class InvoicesStream(InvoizStream):
    """Invoices (Rechnungen), from the invoice list; changes detected by fingerprint, deletions confirmed; listed by
    state when that saves requests (:mod:`tap_invoiz.listing`)."""

    name = "invoices"
    path = "invoice"
    detail_path = "invoice/{id}"
    list_params: t.ClassVar[dict[str, t.Any]] = {"orderBy": "date", "desc": "false", "filter": "all"}
    schema = INVOICES_SCHEMA

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.mapper = RecordMapper(self.name, INVOICE_FIELDS, self.logger)
        start = self.config.get("start_date")
        self.start_date = str(start)[:10] if start else None

    def in_scope(self, raw: dict) -> bool:
        """``start_date`` bounds the sync by invoice date; rows with an unreadable date stay in scope."""
        if not self.start_date:
            return True
        day = berlin_date_or_none(raw.get("date"))
        return day is None or day >= self.start_date

    def ledger_for_run(self) -> Ledger:
        return self.open_ledger(with_states=True, start_date=self.start_date)

    def open_children(self) -> Stream | None:
        """invoice_payments, when selected: read from the details of new or changed invoices."""
        for child in self.child_streams:
            if isinstance(child, InvoicePaymentsStream) and child.selected:
                return child
        return None

    def choose_listing(self, context: Context | None) -> listing.FullListing | listing.StateListing:
        assert self.ledger is not None
        every = listing.full_scan_every(self.config)
        reason = listing.plan(self.ledger, self.children, selected=self.selected, every=every, page_size=self.page_size)
        if reason is not None:
            if self.ledger.had_prior_state:
                self.logger.info("%s: listing every invoice (%s)", self.name, reason)
            return self.full_listing(context)
        self.ledger.runs += 1
        return listing.StateListing(
            lambda params, on_answer: self.open_listing(context, params, on_answer),
            lambda params: self.fetch_page(context, params),
            self.ledger,
            page_size=self.page_size,
            every=every,
            name=self.name,
            path=self.path,
            logger=self.logger,
            progress=self.progress,
        )

    def detail_object(self, data: t.Any) -> dict | None:
        """Detail envelope: ``data.invoice`` if present (docs/invoiz-api.md §3.2), else ``data``."""
        if isinstance(data, dict) and isinstance(data.get("invoice"), dict):
            return data["invoice"]
        return data if isinstance(data, dict) else None

    def map_row(self, raw: dict) -> dict:
        record, extra = self.mapper.map(raw)
        return {
            "account": self.account,
            **record,
            "status": invoice_status(raw.get("state"), raw.get("outstandingAmount")),
            "invoice_url": f"{self.app_url}/invoice/{record['id']}",
            "extra_fields": _extra(extra),
        }


class ContactsStream(InvoizStream):
    """Contacts (invoiz customers), from the customer list, ordered by customer number (stable, new ones last)."""

    name = "contacts"
    path = "customer"
    detail_path = "customer/{id}"
    list_params: t.ClassVar[dict[str, t.Any]] = {"orderBy": "number", "desc": "false"}
    schema = CONTACTS_SCHEMA

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.mapper = RecordMapper(self.name, CONTACT_FIELDS, self.logger)

    def map_row(self, raw: dict) -> dict:
        record, extra = self.mapper.map(raw)
        address = raw.get("address") if isinstance(raw.get("address"), dict) else {}
        country = address.get("countryIso")
        if country in (None, ""):
            country = address.get("isoCountry", country)
        return {
            "account": self.account,
            **record,
            "street": address.get("street"),
            "zip_code": address.get("zipCode"),
            "city": address.get("city"),
            "country_iso": country,
            "phone": first_non_empty(raw.get("phone1"), raw.get("mobile"), raw.get("phone2")),
            "contact_url": f"{self.app_url}/customer/{record['id']}",
            "extra_fields": _extra(extra),
        }


class InvoicePaymentsStream(InvoizStream):
    """Payments of an invoice, from ``payments[]`` of ``GET invoice/{id}``.

    Synced only for invoices that are new or changed since their payments were last read (the parent keeps a
    separate fingerprint map for this stream, so selecting it later backfills all payments once). Payments of a
    deleted invoice are not tombstoned (staging drops payments of deleted invoices); after a full refresh, staging marks
    payments that were not sent again as deleted (``sync_status``).
    """

    name = "invoice_payments"
    selected_by_default = False  # costs one detail request per new or changed invoice: opt in
    path = "invoice/{invoice_id}"
    parent_stream_type = InvoicesStream
    primary_keys: t.ClassVar[list[str]] = ["account", "invoice_id", "id"]
    state_partitioning_keys: t.ClassVar[list[str]] = []  # one state entry, not one per invoice
    schema = PAYMENTS_SCHEMA
    not_found_ok = True  # the invoice may be deleted between the list and the detail request

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.mapper = RecordMapper(self.name, PAYMENT_FIELDS, self.logger)
        self.mapper.ignore("invoiceId")
        self._schema_sent = False
        self._warned_no_id = False

    def get_new_paginator(self) -> None:
        return None

    def get_records(self, context: Context | None) -> Iterable[dict]:
        """One invoice detail per context: the SDK's request loop, not the list streams' record loop."""
        return RESTStream.get_records(self, context)

    def log(self, message: str, *args: t.Any, level: int = logging.INFO, **kwargs: t.Any) -> None:
        """singer-sdk's per-sync INFO lines come once per invoice here: demoted to DEBUG."""
        super().log(message, *args, level=logging.DEBUG if level == logging.INFO else level, **kwargs)

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never, like the parent (several accounts share the table)."""
        return False

    def _write_schema_message(self) -> None:
        if not self._schema_sent:  # once per run, not once per invoice
            self._schema_sent = True
            super()._write_schema_message()

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        if is_not_found(response):
            return
        data = response_body(response).get("data")
        invoice = data.get("invoice") if isinstance(data, dict) and isinstance(data.get("invoice"), dict) else data
        payments = invoice.get("payments") if isinstance(invoice, dict) else None
        if isinstance(payments, list):
            for position, payment in enumerate(payments, start=1):
                if isinstance(payment, dict):
                    yield {"_position": position, **payment}

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        position = row.pop("_position", None)
        self.progress.records += 1
        record, extra = self.mapper.map(row)
        if record.get("id") is None:
            record["id"] = position
            if not self._warned_no_id:
                self._warned_no_id = True
                self.logger.warning("invoice_payments: payments without id; using their position in payments[]")
        return {
            "account": self.account,
            "invoice_id": (context or {}).get("invoice_id"),
            **record,
            "extra_fields": _extra(extra),
            "_sdc_deleted_at": None,
        }


class SyncStatusStream(Stream):
    """One row per account and stream: how its latest sync went, and the full-refresh cut-off staging uses to mark
    rows gone from invoiz (instead of ACTIVATE_VERSION, which would act on every account's rows). Synced last, from
    what the list streams reported (:mod:`tap_invoiz.account_state`)."""

    name = "sync_status"
    primary_keys: t.ClassVar[list[str]] = ["account", "stream"]
    replication_key = None
    schema = SYNC_STATUS_SCHEMA

    def get_records(self, context: Context | None) -> Iterable[dict]:
        yield from self._tap.sync_status_rows  # type: ignore[attr-defined]


__all__ = ["ContactsStream", "InvoicePaymentsStream", "InvoicesStream", "SyncStatusStream"]
