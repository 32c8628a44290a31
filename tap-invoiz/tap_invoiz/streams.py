"""Stream classes of tap-invoiz (their columns: :mod:`tap_invoiz.schemas`).

* ``invoices`` — rows of ``GET invoice`` (key ``account, id``)
* ``contacts`` — rows of ``GET customer`` (key ``account, id``)
* ``invoice_payments`` — ``payments[]`` of ``GET invoice/{id}``, child of ``invoices`` (key ``account, invoice_id, id``);
  detail requests are made only when it is selected, and then only for new or changed invoices.
"""

from __future__ import annotations

import binascii
import logging
import time
import typing as t
import zlib

from singer_sdk import Stream

from tap_invoiz import listing
from tap_invoiz.account_state import AccountEntry, utc_now
from tap_invoiz.client import InvoizStream
from tap_invoiz.records import (
    RecordMapper,
    Unconvertible,
    berlin_date_or_none,
    first_non_empty,
    invoice_status,
    to_integer,
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
from tap_invoiz.sync import InvoizListStream

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    import requests
    from singer_sdk.helpers.types import Context


def _extra(extra: dict) -> dict | None:
    return extra or None


class InvoicesStream(InvoizListStream):
    """Invoices (Rechnungen), from the invoice list; changes detected by fingerprint, deletions confirmed."""

    name = "invoices"
    path = "invoice"
    detail_path = "invoice/{id}"
    list_params: t.ClassVar[dict[str, t.Any]] = {"orderBy": "date", "desc": "false", "filter": "all"}
    schema = INVOICES_SCHEMA

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.mapper = RecordMapper(self.name, INVOICE_FIELDS, self.logger)
        self._payments_fps: dict[int, int] | None = None
        self._payments_had_state = False
        self._payments_entry: AccountEntry | None = None
        start = self.config.get("start_date")
        self._start_date = str(start)[:10] if start else None
        # listing by state (tap_invoiz.listing): per-id state codes, run counter, meta.filter counts of the last answer
        self._codes: dict[int, int] = {}
        self._codes_loaded: dict[int, int] | None = None
        self._runs = 0
        self._list_counts: dict[str, int] | None = None
        self._listing_check: tuple[listing.StateListing, str] | None = None
        self._filter_params: dict[str, t.Any] | None = None

    def in_scope(self, raw: dict) -> bool:
        """``start_date`` bounds the sync by invoice date; rows with an unreadable date stay in scope.

        Every row a full listing handles passes here (list rows and confirmed details): its state is remembered for
        listing by state."""
        try:
            self._codes[to_integer(raw.get("id"))] = listing.state_code(raw)
        except Unconvertible:
            pass
        if not self._start_date:
            return True
        day = berlin_date_or_none(raw.get("date"))
        return day is None or day >= self._start_date

    # -- listing by state (tap_invoiz.listing) -----------------------------------------------------------------------

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        params = super().get_url_params(context, next_page_token)
        if self._filter_params:
            params.update(self._filter_params)
        return params

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        body = response_body(response)
        meta = body.get("meta") if isinstance(body, dict) else None
        if self._listing_check is not None:
            run, active = self._listing_check
            data = body.get("data") if isinstance(body, dict) else None
            run.check_answer(active, meta, [row for row in data or [] if isinstance(row, dict)])
        else:
            self._list_counts = listing.parse_counts(meta)
        yield from super().parse_response(response)

    def _load_listing_state(self) -> None:
        entry = self.account_states(self).get(self.account)
        if not isinstance(entry, dict) or not self._fps:
            return
        try:
            self._codes_loaded = listing.decode_states(entry.get("states"), self._fps)
        except (ValueError, TypeError, zlib.error, binascii.Error):
            self._codes_loaded = None
        self._codes = dict(self._codes_loaded or {})
        runs = entry.get("runs")
        self._runs = runs if isinstance(runs, int) and not isinstance(runs, bool) and runs >= 0 else 0

    def _store_map(self, stream: InvoizStream, fps: dict[int, int], entry: AccountEntry, *, final: bool) -> None:
        super()._store_map(stream, fps, entry, final=final)
        if stream is self:
            entry = self.account_states(self)[self.account]
            entry["states"] = listing.encode_states(self._codes, fps)
            if self._list_counts is not None:
                entry["counts"] = [self._list_counts[key] for key in listing.COUNT_KEYS]
            else:
                entry.pop("counts", None)
            entry["runs"] = self._runs

    def get_records(self, context: Context | None) -> Iterable[dict]:
        self._load_state()
        self._load_listing_state()
        reason = listing.plan(self)
        if reason is None:
            self._runs += 1
            self.progress.started = time.monotonic()
            self._now = utc_now()
            run = listing.StateListing(self, context)
            try:
                yield from run.run()
            except listing.Fallback as exc:
                self.logger.warning(
                    "%s: listing by state is off for this run: %s; listing every invoice", self.name, exc
                )
                self._list_counts = None
            else:
                self._list_counts = run.snapshot
                self._commit_state(final=True)
                self._tap.sync_status_rows.append(self.sync_status(run.listed))  # type: ignore[attr-defined]
                self.logger.info(
                    "%s (listed by state)", self.progress.summary(self.account, run.listed, len(self._fps))
                )
                return
        elif self._had_prior_state:
            self.logger.info("%s: listing every invoice (%s)", self.name, reason)
        yield from super().get_records(context)

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

    # -- invoice_payments bookkeeping --------------------------------------------------------------------------------

    @property
    def payments_stream(self) -> InvoicePaymentsStream | None:
        for child in self.child_streams:
            if isinstance(child, InvoicePaymentsStream) and child.selected:
                return child
        return None

    def _payments_map(self) -> dict[int, int] | None:
        child = self.payments_stream
        if child is None:
            return None
        if self._payments_fps is None:
            self._payments_fps, self._payments_had_state = self._read_map(child)
            self._payments_entry = self.account_entry(child, had_prior_state=self._payments_had_state)
        return self._payments_fps

    def child_needs(self, row_id: int, fp: int) -> bool:
        fps = self._payments_map()
        return fps is not None and fps.get(row_id) != fp

    def child_done(self, row_id: int, fp: int | None) -> None:
        fps = self._payments_map()
        if fps is None:
            return
        if fp is None:
            fps.pop(row_id, None)
        else:
            fps[row_id] = fp

    def _commit_children(self, *, final: bool) -> None:
        child = self.payments_stream
        if child is not None and self._payments_fps is not None and self._payments_entry is not None:
            self._store_map(child, self._payments_fps, self._payments_entry, final=final)

    def sync_status(self, listed: int) -> dict:
        """Also reports invoice_payments (synced inside this stream) when it is selected."""
        own = super().sync_status(listed)
        child = self.payments_stream
        entry = self._payments_entry
        if child is not None and entry is not None and self._payments_fps is not None:
            full_refresh = entry.full_refresh
            self._tap.sync_status_rows.append(
                {  # type: ignore[attr-defined]
                    **own,
                    "stream": child.name,
                    "full_refresh": not self._payments_had_state,
                    "full_refresh_started_at": full_refresh.started_at if full_refresh else None,
                    "full_refresh_rows": None,  # payments are not tracked one by one: no commit check (see staging)
                    "last_full_refresh_started_at": entry.confirmed.started_at if entry.confirmed else None,
                    "rows_listed": None,
                    "records_emitted": child.progress.records,
                    "new": None,
                    "changed": None,
                    "deleted": None,
                    "tracked": None,
                    "requests": child.progress.requests,
                    "retries": child.progress.retries,
                }
            )
        return own


class ContactsStream(InvoizListStream):
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
    _not_found_ok = True  # the invoice may be deleted between the list and the detail request

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.mapper = RecordMapper(self.name, PAYMENT_FIELDS, self.logger)
        self.mapper.ignore("invoiceId")
        self._schema_sent = False
        self._warned_no_id = False

    def get_new_paginator(self) -> None:
        return None

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
