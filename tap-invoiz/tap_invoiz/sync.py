"""The list streams' sync: a full listing per run, diffed against the fingerprints in the state.

How a list stream syncs (the API has no updated-since filter and no updatedAt; see docs/DESIGN.md):

1. It lists *all* rows (offset/limit paging until ``offset >= meta.count``, or a short page when ``meta.count`` is
   missing), de-duplicating ids within the run. Once the first page has given ``meta.count`` and the effective page
   size, up to ``max_concurrency`` further pages are fetched at the same time; rows are still handled strictly in
   offset order (:mod:`tap_invoiz.paging`).
2. For every row it computes a fingerprint of the row as the API returned it (:mod:`tap_invoiz.fingerprint`) and
   emits the row only when the fingerprint differs from the one in the state (new or changed rows).
3. After a complete scan, tracked ids that were not seen are deletion candidates; each is confirmed with a detail
   request: 404 (or 400 whose body says NOT_FOUND) → a tombstone record (keys + ``_sdc_deleted_at``); 200 → the row
   still exists (it was skipped by a page shift) and is emitted if changed. If ``meta.count`` moved during the scan or
   fewer unique ids than ``meta.count`` came back, the list is scanned once more first.
4. The state (per stream and per ``account``) is updated only for rows that were emitted, and STATE messages follow the
   records they cover (:mod:`tap_invoiz.state`).

ACTIVATE_VERSION is never sent (several accounts may share the tables); a run without prior state reports its full
refresh in the ``sync_status`` stream instead (:mod:`tap_invoiz.account_state`).
"""

from __future__ import annotations

import time
import typing as t
from http import HTTPStatus

from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_invoiz import fingerprint as fpmod
from tap_invoiz.account_state import utc_now
from tap_invoiz.paging import DEFAULT_PAGE_SIZE, InvoizPaginator, PageWindow
from tap_invoiz.records import RecordMapper, RejectedRow, Unconvertible, to_integer
from tap_invoiz.responses import response_body
from tap_invoiz.state import FingerprintStream

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterable

    import requests
    from singer_sdk.helpers.types import Context


class InvoizListStream(FingerprintStream):
    """A full listing per run, diffed against the fingerprints in the state; see the module docstring."""

    detail_path: str = ""  # e.g. "invoice/{id}"
    list_params: t.ClassVar[dict[str, t.Any]] = {}

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.page_counts: list[int | None] = []  # meta.count of every page of the current scan
        self._emit_children = False

    # -- mapping, supplied by the streams ---------------------------------------------------------------------------

    mapper: RecordMapper

    def map_row(self, raw: dict) -> dict:
        raise NotImplementedError

    def in_scope(self, raw: dict) -> bool:
        return True

    def detail_object(self, data: t.Any) -> dict | None:
        return data if isinstance(data, dict) else None

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: target-postgres applies ACTIVATE_VERSION to the whole table, and several accounts may share it.

        Rows gone from invoiz are marked by tombstones (incremental runs) and, after a full refresh, by the
        ``sync_status`` stream's cut-off per account (:mod:`tap_invoiz.account_state`).
        """
        return False

    # -- paging ------------------------------------------------------------------------------------------------------

    @property
    def page_size(self) -> int:
        return int(self.config.get("page_size") or DEFAULT_PAGE_SIZE)

    def get_new_paginator(self) -> InvoizPaginator:
        self.page_counts = []
        return InvoizPaginator(self.page_size, self.page_counts)

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        return {"offset": next_page_token or 0, "limit": self.page_size, **self.list_params}

    def validate_response(self, response: requests.Response) -> None:
        super().validate_response(response)
        if not self._not_found_ok and response.status_code < HTTPStatus.MULTIPLE_CHOICES:
            data = response_body(response).get("data")
            if not isinstance(data, list):
                msg = f"invoiz answered {self.path} with 'data' that is a JSON {type(data).__name__}, not a list"
                raise RetriableAPIError(msg, response)

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        meta = response_body(response).get("meta")
        count = meta.get("count") if isinstance(meta, dict) else None
        try:
            self.page_counts.append(to_integer(count) if count is not None else None)
        except Unconvertible:
            self.page_counts.append(None)
        yield from super().parse_response(response)

    def list_request(self, context: Context | None, offset: int) -> requests.PreparedRequest:
        """The list request for one page."""
        return self.build_prepared_request(
            method="GET",
            url=self.get_url(context),
            params=self.get_url_params(context, offset),
            headers=self.http_headers,
        )

    def request_records(self, context: Context | None) -> Iterable[dict]:
        """The rows of one listing, strictly in offset order (see :class:`tap_invoiz.paging.PageWindow`)."""
        yield from PageWindow(self, context).rows()

    # -- children ----------------------------------------------------------------------------------------------------

    def child_needs(self, row_id: int, fp: int) -> bool:
        return False

    def child_done(self, row_id: int, fp: int | None) -> None:
        """Record that the children of ``row_id`` were synced (fp None: the row was deleted)."""

    def generate_child_contexts(self, record: dict, context: Context | None) -> Iterable[Context | None]:
        if self._emit_children and record.get("_sdc_deleted_at") is None:
            yield {"account": record["account"], "invoice_id": record["id"]}

    # -- the sync ----------------------------------------------------------------------------------------------------

    def tombstone(self, row_id: int) -> dict:
        record = dict.fromkeys(self.schema["properties"])
        record.update({"account": self.account, "id": row_id, "_sdc_deleted_at": self._now})
        return record

    def _row_id(self, raw: dict) -> int:
        try:
            return to_integer(raw.get("id"))
        except Unconvertible:
            msg = f"{self.name}: a row from {self.path} has no integer id (got a JSON {type(raw.get('id')).__name__})"
            raise FatalAPIError(msg) from None

    def _emit(self, raw: dict, row_id: int, fp: int, *, need_self: bool, need_child: bool) -> Iterable[dict]:
        try:
            record = self.map_row(raw)
        except RejectedRow as exc:  # e.g. a NUL character: skipped, fingerprint not recorded, retried next run
            self.logger.warning("%s", exc)
            self.progress.rejected += 1
            return
        record["_sdc_deleted_at"] = None
        self._emit_children = need_child
        kind = ("new" if row_id not in self._fps else "changed") if need_self else "resent"
        yield record  # written (and its children synced) before the generator resumes
        self._emit_children = False
        setattr(self.progress, kind, getattr(self.progress, kind) + 1)
        if need_self:
            self._fps[row_id] = fp
        if need_child:
            self.child_done(row_id, fp)
        self._row_committed()

    def get_records(self, context: Context | None) -> Iterable[dict]:
        self.progress.started = time.monotonic()
        self._load_state()
        self._now = utc_now()
        seen = yield from self._list_everything(context)
        # Deletions: only after a scan that ran to its end (an exception above ends the run before this point).
        yield from self._confirm_missing(seen)
        self._commit_state(final=True)
        self._tap.sync_status_rows.append(self.sync_status(len(seen)))  # type: ignore[attr-defined]
        self.logger.info("%s", self.progress.summary(self.account, len(seen), len(self._fps)))

    def _list_everything(self, context: Context | None) -> Generator[dict, None, set[int]]:
        """One scan, or two when the first looked inconsistent; returns the ids seen."""
        seen: set[int] = set()
        for scan in (1, 2):
            seen_now = yield from self._scan(context)
            counts = [c for c in self.page_counts if c is not None]
            final_count = counts[-1] if counts else None
            # One set of ids per scan, merged afterwards (not two sets filled row by row): the tap's memory at 100k rows.
            seen = seen_now if not seen else seen | seen_now
            if final_count is None or (len(set(counts)) == 1 and len(seen_now) >= final_count):
                break
            self.logger.warning(
                "%s: scan %d looked inconsistent (meta.count %s, %d unique rows): rows were added or removed "
                "while paging%s",
                self.name,
                scan,
                sorted(set(counts)),
                len(seen_now),
                "; scanning once more" if scan == 1 else "; missed rows follow with the next run",
            )
        return seen

    def _scan(self, context: Context | None) -> Generator[dict, None, set[int]]:
        """One listing: emits new and changed rows (and their children); returns the ids seen."""
        salt = self.fingerprint_salt
        selected = self.selected
        seen_now: set[int] = set()
        for raw in self.request_records(context):
            row_id = self._row_id(raw)
            if row_id in seen_now:  # the same row on two pages (a page shift): handled once
                continue
            seen_now.add(row_id)
            if not self.in_scope(raw):
                if self._fps.pop(row_id, None) is not None:
                    self._unflushed += 1
                continue
            fp = fpmod.fingerprint(raw, salt)
            need_self = selected and self._fps.get(row_id) != fp
            need_child = self.child_needs(row_id, fp)
            if need_self or need_child:
                yield from self._emit(raw, row_id, fp, need_self=need_self, need_child=need_child)
        return seen_now

    def _confirm_missing(self, seen: set[int]) -> Iterable[dict]:
        """Each tracked id the listing did not show is confirmed with a detail request, so a page shift never deletes
        a row that exists."""
        candidates = sorted(row_id for row_id in self._fps if row_id not in seen) if self.selected else []
        self.progress.candidates = len(candidates)
        if len(candidates) > max(50, len(self._fps) // 10):
            self.logger.warning(
                "%s: %d of %d tracked rows are missing from the listing; confirming each with a detail request "
                "(only rows invoiz answers 404/NOT_FOUND for are marked deleted)",
                self.name,
                len(candidates),
                len(self._fps),
            )
        salt = self.fingerprint_salt
        for row_id in candidates:
            yield from self._confirm(row_id, salt)

    def _confirm(self, row_id: int, salt: str) -> Iterable[dict]:
        data = self.fetch_detail(self.detail_path.format(id=row_id))
        self.progress.checked += 1
        self.progress.maybe_log()
        raw = self.detail_object(data) if data is not None else None
        if raw is None:
            yield self.tombstone(row_id)
            self.progress.deleted += 1
            self._fps.pop(row_id, None)
            self.child_done(row_id, None)
            self._unflushed += 1
            return
        if not self.in_scope(raw):
            self._fps.pop(row_id, None)
            return
        # It exists but the listing skipped it. Its detail differs from a list row, so its fingerprint is taken
        # from the detail: emitted now if that changed, and again from the list once the listing shows it.
        fp = fpmod.fingerprint(raw, salt)
        if self._fps.get(row_id) != fp:
            yield from self._emit(raw, row_id, fp, need_self=True, need_child=self.child_needs(row_id, fp))
