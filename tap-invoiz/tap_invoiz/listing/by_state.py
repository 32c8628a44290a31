"""Listing invoices by state, the run: what one incremental run of the invoices stream lists (see
:mod:`tap_invoiz.listing`). It yields rows and ids to confirm to the record loop (:mod:`tap_invoiz.sync`), which
handles each before the listing goes on, so the counts it reconciles always include what was handled."""

from __future__ import annotations

import math
import typing as t

from tap_invoiz.ledger import CODE, STATES, parse_counts, row_id, state_code
from tap_invoiz.listing.full import Listing
from tap_invoiz.listing.plan import LISTED, QUIET, TARGETED_PAGES, Fallback, audit_pages
from tap_invoiz.records import Unconvertible, to_integer

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterator

    from tap_invoiz.ledger import Ledger
    from tap_invoiz.listing.full import Item
    from tap_invoiz.paging import Answer, PageWindow
    from tap_invoiz.progress import StreamProgress


class StateListing(Listing):
    """One incremental run of the invoices stream (see the module docstring of :mod:`tap_invoiz.listing`)."""

    by_state = True

    def __init__(
        self,
        open_listing: Callable[[dict, Callable[[Answer], None]], PageWindow],
        fetch_page: Callable[[dict], Answer],
        ledger: Ledger,
        *,
        page_size: int,
        every: int,
        name: str,
        path: str,
        logger: logging.Logger,
        progress: StreamProgress,
    ) -> None:
        super().__init__(open_listing, ledger, name=name, path=path, logger=logger, progress=progress)
        self.fetch_page = fetch_page
        assert ledger.codes is not None
        self.codes: dict[int, int] = ledger.codes
        self.tally = ledger.tally
        self.page_size = page_size
        self.every = every
        self.snapshot: dict[str, int] | None = None
        self.list_keys: set[str] = set()

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

    def from_detail(self, raw: dict) -> dict:
        """A confirmed invoice: its new state must be one the tap knows; it is fingerprinted as a list row would be
        (the detail has more fields), so the next listing of its state does not emit it again."""
        if state_code(raw) == 0:
            raise Fallback(f"invoice {raw.get('id')} is in state {raw.get('state')!r}")
        if self.list_keys:
            raw = {key: value for key, value in raw.items() if key in self.list_keys}
        return raw

    def list_rows(self, active: str, seen: set[int], **params: t.Any) -> Iterator[Item]:
        """All rows of one filter with their ids (added to ``seen``), paged as a full listing is (concurrency
        included), each answer self-checked."""
        progress = self.progress
        progress.scan = 0
        name, progress.name = progress.name, f"{self.name} filter={active}"
        try:
            yield from self.scan(
                {"filter": active, **params}, lambda answer: self.check_answer(active, answer.meta, answer.rows), seen
            )
        finally:
            progress.name = name

    def page(self, active: str, offset: int, **params: t.Any) -> list[dict]:
        """One page (targeted scans, audit slices), self-checked. Callers advance by the rows received (the server
        may cap ``limit``)."""
        answer = self.fetch_page({"offset": offset, "limit": self.page_size, "filter": active, **params})
        self.check_answer(active, answer.meta, answer.rows)
        self.listed += len(answer.rows)
        return answer.rows

    # -- the run

    def items(self) -> Iterator[Item]:
        self.logger.info(
            "%s: listing by state (run %d of a %d-run audit cycle): %s fully, paid and cancelled by their counts",
            self.name,
            (self.ledger.runs - 1) % self.every + 1,
            self.every,
            ", ".join(LISTED),
        )
        seen: set[int] = set()
        for state in LISTED:
            for rid, raw in self.list_rows(state, seen, orderBy="date", desc="false"):
                self.listed += 1
                self.list_keys.update(raw)
                yield rid, raw
        if self.snapshot is None:  # pragma: no cover - a listing always fetches a first page
            raise Fallback("no list answer")
        listed_codes = {CODE[state] for state in LISTED}
        left = sorted(rid for rid, code in self.codes.items() if code in listed_codes and rid not in seen)
        self.progress.candidates += len(left)
        for rid in left:  # an id that left where the state had it: deleted, or moved (its new state)
            yield rid, None
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

    def reconcile(self, state: str) -> Iterator[Item]:
        assert self.snapshot is not None
        code = CODE[state]
        missing = self.snapshot[state] - self.tally[code]
        if missing > 0:  # unseen entrants: look for them among the newest
            offset = 0
            for _ in range(TARGETED_PAGES):
                rows = self.page(state, offset, orderBy="date", desc="true")
                offset += len(rows)
                for raw in rows:
                    rid = row_id(raw, self.name, self.path)
                    if self.codes.get(rid) != code:
                        yield rid, raw
                if self.snapshot[state] == self.tally[code] or not rows or offset >= self.snapshot[state]:
                    break
            if self.snapshot[state] == self.tally[code]:
                return
        # an id left unseen, or the entrants are not among the newest: list the state fully
        self.logger.info(
            "%s: reconciling %s by listing it fully (%d known, %d counted)",
            self.name,
            state,
            self.tally[code],
            self.snapshot[state],
        )
        seen: set[int] = set()
        for rid, raw in self.list_rows(state, seen, orderBy="date", desc="false"):
            self.listed += 1
            yield rid, raw
        gone = sorted(rid for rid, c in self.codes.items() if c == code and rid not in seen)
        self.progress.candidates += len(gone)
        for rid in gone:
            yield rid, None

    def audit(self) -> Iterator[Item]:
        assert self.snapshot is not None
        total = math.ceil(self.snapshot["all"] / self.page_size)
        pages = audit_pages(total, self.every, self.ledger.runs - 1)  # runs counts this run already
        offset, end = pages.start * self.page_size, pages.stop * self.page_size
        while offset < min(end, self.snapshot["all"]):
            rows = self.page("all", offset, orderBy="date", desc="false")
            if not rows:
                break
            offset += len(rows)
            for raw in rows:
                if state_code(raw) == 0:
                    raise Fallback(f"invoice {raw.get('id')} is in state {raw.get('state')!r}")
                yield row_id(raw, self.name, self.path), raw
