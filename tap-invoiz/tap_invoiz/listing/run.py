"""Listing invoices by state, the run: one incremental run of the invoices stream (see :mod:`tap_invoiz.listing`)."""

from __future__ import annotations

import math
import typing as t
from collections import Counter

from tap_invoiz import fingerprint as fpmod
from tap_invoiz.listing.plan import (
    CODE,
    LISTED,
    QUIET,
    STATES,
    TARGETED_PAGES,
    Fallback,
    audit_pages,
    full_scan_every,
    parse_counts,
    state_code,
)
from tap_invoiz.records import Unconvertible, to_integer
from tap_invoiz.responses import response_body

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from tap_invoiz.streams import InvoicesStream


class StateListing:
    """One incremental run of the invoices stream (see the module docstring)."""

    def __init__(self, stream: InvoicesStream, context: t.Any) -> None:
        self.s = stream
        self.context = context
        self.codes: dict[int, int] = stream._codes
        self.tally = Counter(self.codes.values())
        self.snapshot: dict[str, int] | None = None
        self.list_keys: set[str] = set()
        self.listed = 0
        self.salt = stream.fingerprint_salt

    # -- bookkeeping

    def set_code(self, row_id: int, code: int) -> None:
        old = self.codes.get(row_id)
        if old == code:
            return
        if old is not None:
            self.tally[old] -= 1
        self.codes[row_id] = code
        self.tally[code] += 1

    def drop(self, row_id: int) -> None:
        old = self.codes.pop(row_id, None)
        if old is not None:
            self.tally[old] -= 1

    def check_answer(self, active: str, meta: object, rows: list) -> None:
        """The self-check of every list answer (raises Fallback)."""
        counts = parse_counts(meta)
        if counts is None:
            raise Fallback(
                "the list answer has no usable meta.filter counts (missing, not integers, or they do not add up to all)"
            )
        if self.snapshot is None:
            self.snapshot = counts
        elif counts != self.snapshot:
            raise Fallback("invoices changed during the run (meta.filter counts moved)")
        count = meta.get("count") if isinstance(meta, dict) else None
        try:
            count = to_integer(count)
        except Unconvertible:
            count = None
        if count != counts[active]:
            raise Fallback(
                f"meta.count of filter={active} ({count}) differs from meta.filter.{active}.count ({counts[active]})"
            )
        if active != "all":
            for raw in rows:
                if isinstance(raw, dict) and raw.get("state") != active:
                    raise Fallback(f"filter={active} returned an invoice in state {raw.get('state')!r}")

    def handle(self, raw: dict, code: int) -> Iterable[dict]:
        """A row seen in a list (or a detail cut to list fields): emit it if it changed, record its state."""
        s = self.s
        row_id = s._row_id(raw)
        fp = fpmod.fingerprint(raw, self.salt)
        need_self = s._fps.get(row_id) != fp
        need_child = s.child_needs(row_id, fp)
        if need_self or need_child:
            yield from s._emit(raw, row_id, fp, need_self=need_self, need_child=need_child)
        self.set_code(row_id, code)

    def list_rows(self, active: str, **params: t.Any) -> Iterable[dict]:
        """All rows of one filter, paged as a full listing is (concurrency included), each answer self-checked."""
        s = self.s
        s._listing_check = (self, active)
        s._filter_params = {"filter": active, **params}
        s.progress.scan = 0
        name, s.progress.name = s.progress.name, f"{s.name} filter={active}"
        try:
            yield from s.request_records(self.context)
        finally:
            s._listing_check = None
            s._filter_params = None
            s.progress.name = name

    def page(self, active: str, offset: int, **params: t.Any) -> list[dict]:
        """One page (targeted scans, audit slices), self-checked. Callers advance by the rows received (the server
        may cap ``limit``)."""
        s = self.s
        prepared = s.build_prepared_request(
            method="GET",
            url=s.get_url(self.context),
            params={"offset": offset, "limit": s.page_size, "filter": active, **params},
            headers=s.http_headers,
        )
        response = s.request_decorator(s._request)(prepared, self.context)
        body = response_body(response)
        rows = [row for row in body.get("data") or [] if isinstance(row, dict)]
        self.check_answer(active, body.get("meta"), rows)
        self.listed += len(rows)
        return rows

    def confirm(self, row_id: int) -> Iterable[dict]:
        """An id that left where the state had it: deleted (tombstone) or moved (its new state, emitted if changed)."""
        s = self.s
        data = s.fetch_detail(s.detail_path.format(id=row_id))
        s.progress.checked += 1
        raw = s.detail_object(data) if data is not None else None
        if raw is None:
            yield s.tombstone(row_id)
            s.progress.deleted += 1
            s._fps.pop(row_id, None)
            s.child_done(row_id, None)
            s._unflushed += 1
            self.drop(row_id)
            return
        code = state_code(raw)
        if code == 0:
            raise Fallback(f"invoice {row_id} is in state {raw.get('state')!r}")
        if self.list_keys:  # the detail has more fields than a list row: fingerprint what a list row would carry
            raw = {key: value for key, value in raw.items() if key in self.list_keys}
        yield from self.handle(raw, code)

    # -- the run

    def run(self) -> Iterable[dict]:
        s = self.s
        s.logger.info(
            "%s: listing by state (run %d of a %d-run audit cycle): %s fully, paid and cancelled by their counts",
            s.name,
            (s._runs - 1) % full_scan_every(s) + 1,
            full_scan_every(s),
            ", ".join(LISTED),
        )
        seen: set[int] = set()
        for state in LISTED:
            code = CODE[state]
            for raw in self.list_rows(state, orderBy="date", desc="false"):
                self.listed += 1
                self.list_keys.update(raw)
                seen.add(s._row_id(raw))
                yield from self.handle(raw, code)
        if self.snapshot is None:  # pragma: no cover - request_records always fetches a first page
            raise Fallback("no list answer")
        listed_codes = {CODE[state] for state in LISTED}
        left = sorted(row_id for row_id, code in self.codes.items() if code in listed_codes and row_id not in seen)
        s.progress.candidates += len(left)
        for row_id in left:
            yield from self.confirm(row_id)
        for _ in range(2 * len(QUIET) + 2):
            unresolved = [st for st in QUIET if self.snapshot[st] != self.tally[CODE[st]]]
            if not unresolved:
                break
            yield from self.reconcile(unresolved[0])
        wrong = [st for st in STATES if self.snapshot[st] != self.tally[CODE[st]]]
        if wrong:
            raise Fallback(
                "counts do not add up after reconciling: "
                + ", ".join(f"{st} {self.tally[CODE[st]]} known vs {self.snapshot[st]}" for st in wrong)
            )
        yield from self.audit()

    def reconcile(self, state: str) -> Iterable[dict]:
        code = CODE[state]
        missing = self.snapshot[state] - self.tally[code]
        if missing > 0:  # unseen entrants: look for them among the newest
            offset = 0
            for _ in range(TARGETED_PAGES):
                rows = self.page(state, offset, orderBy="date", desc="true")
                offset += len(rows)
                for raw in rows:
                    if self.codes.get(self.s._row_id(raw)) != code:
                        yield from self.handle(raw, code)
                if self.snapshot[state] == self.tally[code] or not rows or offset >= self.snapshot[state]:
                    break
            if self.snapshot[state] == self.tally[code]:
                return
        # an id left unseen, or the entrants are not among the newest: list the state fully
        self.s.logger.info(
            "%s: reconciling %s by listing it fully (%d known, %d counted)",
            self.s.name,
            state,
            self.tally[code],
            self.snapshot[state],
        )
        seen: set[int] = set()
        for raw in self.list_rows(state, orderBy="date", desc="false"):
            self.listed += 1
            seen.add(self.s._row_id(raw))
            yield from self.handle(raw, code)
        gone = sorted(row_id for row_id, c in self.codes.items() if c == code and row_id not in seen)
        self.s.progress.candidates += len(gone)
        for row_id in gone:
            yield from self.confirm(row_id)

    def audit(self) -> Iterable[dict]:
        s = self.s
        total = math.ceil(self.snapshot["all"] / s.page_size)
        pages = audit_pages(total, full_scan_every(s), s._runs - 1)  # _runs counts this run already
        offset, end = pages.start * s.page_size, pages.stop * s.page_size
        while offset < min(end, self.snapshot["all"]):
            rows = self.page("all", offset, orderBy="date", desc="false")
            if not rows:
                break
            offset += len(rows)
            for raw in rows:
                code = state_code(raw)
                if code == 0:
                    raise Fallback(f"invoice {raw.get('id')} is in state {raw.get('state')!r}")
                yield from self.handle(raw, code)
