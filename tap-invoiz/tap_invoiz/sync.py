"""The record loop of the list streams: every row a listing yields passes here, top to bottom.

The API has no updated-since filter and no updatedAt (see docs/DESIGN.md), so a run lists rows — all of them
(:class:`tap_invoiz.listing.FullListing`) or the invoices by state (:class:`tap_invoiz.listing.StateListing`) — and:

1. **compares** each row's fingerprint (:mod:`tap_invoiz.fingerprint`) with the one in the ledger
   (:mod:`tap_invoiz.ledger`); rows outside ``start_date`` are only remembered by state;
2. **maps** a new or changed row to its record (the stream's ``map_row``, :mod:`tap_invoiz.records`);
3. **emits** it (the SDK writes it and syncs its children before the loop resumes);
4. **records** its fingerprint in the ledger; a STATE message every :data:`STATE_EVERY` records, so STATE messages
   follow the records they cover and a run killed halfway loses nothing;
5. **confirms** what the listing says is missing with a detail request: 404 (or 400 whose body says NOT_FOUND) → a
   tombstone record (keys + ``_sdc_deleted_at``); otherwise the row exists and is handled as in 1–4.

ACTIVATE_VERSION is never sent (several accounts may share the tables); a run without prior state reports its full
refresh in the ``sync_status`` stream instead (:mod:`tap_invoiz.account_state`).
"""

from __future__ import annotations

import time
import typing as t

from tap_invoiz import fingerprint as fpmod
from tap_invoiz.account_state import utc_now
from tap_invoiz.ledger import state_code
from tap_invoiz.listing import Fallback
from tap_invoiz.records import RejectedRow

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterator

    from tap_invoiz.ledger import Ledger
    from tap_invoiz.listing import FullListing, StateListing
    from tap_invoiz.progress import StreamProgress

#: Emitted records between two STATE messages (each carries the whole encoded fingerprint map); tests lower it.
STATE_EVERY = 5000


class ListStream(t.Protocol):
    """What the record loop uses of its stream (:class:`tap_invoiz.client.InvoizStream`)."""

    name: str
    logger: logging.Logger
    progress: StreamProgress

    @property
    def selected(self) -> bool: ...

    @property
    def account(self) -> str: ...

    @property
    def fingerprint_salt(self) -> str: ...

    def in_scope(self, raw: dict) -> bool: ...

    def map_row(self, raw: dict) -> dict: ...

    def detail(self, row_id: int) -> dict | None: ...

    def tombstone(self, row_id: int, deleted_at: str) -> dict: ...

    def write_state(self, *, final: bool) -> bool: ...


class RecordLoop:
    """One run of a list stream: list → compare → map → emit → record, then confirm what is missing."""

    def __init__(self, stream: ListStream, ledger: Ledger, children: Ledger | None) -> None:
        self.stream = stream
        self.ledger = ledger
        self.children = children  # invoice_payments: their own fingerprints, synced for new or changed invoices
        self.progress = stream.progress
        self.salt = stream.fingerprint_salt
        self.selected = stream.selected
        self.children_due = False  # the record being written needs its children synced (read by the stream)
        self.unflushed = 0  # records and deletions the last STATE message does not cover
        self.deleted_at = ""
        self.listed = 0  # rows the listing showed (for sync_status)

    def sync(self, listing: FullListing | StateListing, list_everything: Callable[[], FullListing]) -> Iterator[dict]:
        """The run: ``listing``, or — when listing by state finds it cannot be trusted — every row."""
        stream = self.stream
        if listing.by_state:
            try:
                yield from self.run(listing)
            except Fallback as exc:
                stream.logger.warning(
                    "%s: listing by state is off for this run: %s; listing every invoice", stream.name, exc
                )
                self.ledger.counts = None
            else:
                self.ledger.counts = listing.snapshot  # type: ignore[union-attr]
                self.listed = listing.listed
                self.commit(final=True)
                stream.logger.info("%s (listed by state)", self.summary(listing.listed))
                return
        listing = list_everything()
        yield from self.run(listing)
        self.listed = listing.listed
        self.commit(final=True)
        stream.logger.info("%s", self.summary(listing.listed))

    def run(self, listing: FullListing | StateListing) -> Iterator[dict]:
        self.progress.started = time.monotonic()
        self.deleted_at = utc_now()
        for row_id, raw in listing.items():
            if raw is None:
                yield from self.confirm(row_id, listing)
            else:
                yield from self.handle(row_id, raw)

    def handle(self, row_id: int, raw: dict) -> Iterator[dict]:
        """A row as invoiz shows it: emitted if new or changed (or its children are due)."""
        ledger = self.ledger
        ledger.set_code(row_id, state_code(raw))
        if not self.stream.in_scope(raw):
            if ledger.mark_outside(row_id):
                self.unflushed += 1
            return
        ledger.outside.discard(row_id)
        fp = fpmod.fingerprint(raw, self.salt)
        need_self = self.selected and ledger.changed(row_id, fp)
        need_child = self.children is not None and self.children.changed(row_id, fp)
        if need_self or need_child:
            yield from self.emit(raw, row_id, fp, need_self=need_self, need_child=need_child)

    def emit(self, raw: dict, row_id: int, fp: int, *, need_self: bool, need_child: bool) -> Iterator[dict]:
        try:
            record = self.stream.map_row(raw)
        except RejectedRow as exc:  # e.g. a NUL character: skipped, fingerprint not recorded, retried next run
            self.stream.logger.warning("%s", exc)
            self.progress.rejected += 1
            return
        record["_sdc_deleted_at"] = None
        kind = ("new" if row_id not in self.ledger.fingerprints else "changed") if need_self else "resent"
        self.children_due = need_child
        yield record  # written (and its children synced) before the generator resumes
        self.children_due = False
        setattr(self.progress, kind, getattr(self.progress, kind) + 1)
        if need_self:
            self.ledger.fingerprints[row_id] = fp
        if need_child and self.children is not None:
            self.children.fingerprints[row_id] = fp
        self.unflushed += 1
        if self.unflushed >= STATE_EVERY:
            self.commit()

    def confirm(self, row_id: int, listing: FullListing | StateListing) -> Iterator[dict]:
        """An id the listing did not show where the ledger has it: deleted (a tombstone) or still there (handled as
        a listed row), so a page shift never deletes a row that exists."""
        raw = self.stream.detail(row_id)
        self.progress.checked += 1
        self.progress.maybe_log()
        if raw is not None:
            yield from self.handle(row_id, listing.from_detail(raw))
            return
        if row_id not in self.ledger.outside:  # rows before start_date were never emitted
            yield self.stream.tombstone(row_id, self.deleted_at)
            self.progress.deleted += 1
        self.ledger.forget(row_id)
        if self.children is not None:
            self.children.forget(row_id)
        self.unflushed += 1

    def commit(self, *, final: bool = False) -> None:
        if self.stream.write_state(final=final):
            self.unflushed = 0

    def status_rows(self, run_id: str, child: t.Any | None) -> list[dict]:
        """The ``sync_status`` rows of this run: the child's (invoice_payments, if synced inside it), then its own."""
        rows = []
        if child is not None and self.children is not None:
            rows.append(status_row(self.children, child.progress, child.name, run_id, own=False))
        rows.append(status_row(self.ledger, self.progress, self.stream.name, run_id, listed=self.listed))
        return rows

    def summary(self, listed: int) -> str:
        return self.progress.summary(self.stream.account, listed, len(self.ledger.fingerprints))


def status_row(
    ledger: Ledger, progress: StreamProgress, stream: str, run_id: str, *, listed: int | None = None, own: bool = True
) -> dict:
    """A stream's row for the ``sync_status`` stream (see :mod:`tap_invoiz.account_state`). ``own=False``: a child
    synced inside its parent (invoice_payments), whose rows are not tracked one by one (no commit check in staging)."""
    entry = ledger.entry
    full_refresh = entry.full_refresh
    tracked = len(ledger.fingerprints)
    return {
        "account": ledger.account,
        "stream": stream,
        "run_id": run_id,
        "started_at": ledger.started_at,
        "completed_at": utc_now(),
        "full_refresh": not ledger.had_prior_state,
        "full_refresh_started_at": full_refresh.started_at if full_refresh else None,
        "full_refresh_rows": tracked if full_refresh and own else None,
        "last_full_refresh_started_at": entry.confirmed.started_at if entry.confirmed else None,
        "rows_listed": listed,
        "records_emitted": progress.emitted if own else progress.records,
        "new": progress.new if own else None,
        "changed": progress.changed if own else None,
        "deleted": progress.deleted if own else None,
        "tracked": tracked if own else None,
        "requests": progress.requests,
        "retries": progress.retries,
    }
