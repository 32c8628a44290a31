"""Listing every row: the listing of a run that does not list by state (and of the contacts, always).

1. It lists *all* rows (offset/limit paging until ``offset >= meta.count``, or a short page when ``meta.count`` is
   missing), de-duplicating ids within the run; pages are fetched ahead, rows handled in offset order
   (:mod:`tap_invoiz.paging`).
2. If ``meta.count`` moved during the scan or fewer unique ids than ``meta.count`` came back, the list is scanned once
   more.
3. After a complete listing, tracked ids that were not seen are deletion candidates: the record loop confirms each
   with a detail request (:mod:`tap_invoiz.sync`).
"""

from __future__ import annotations

import typing as t

from tap_invoiz.ledger import parse_counts, row_id

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Generator, Iterator

    from tap_invoiz.ledger import Ledger
    from tap_invoiz.paging import Answer, PageWindow
    from tap_invoiz.progress import StreamProgress

#: What a listing yields: a row it listed (id, row) or an id the record loop must confirm (id, None).
Item = tuple[int, "dict | None"]


class Listing:
    """The start both listings share: the listing's requests and ledger, the stream's names (for ids and messages),
    and :meth:`scan`, one paged listing of the list endpoint, each row with its id."""

    by_state: bool

    def __init__(
        self,
        open_listing: Callable[[dict, Callable[[Answer], None]], PageWindow],
        ledger: Ledger,
        *,
        name: str,
        path: str,
        logger: logging.Logger,
        progress: StreamProgress,
    ) -> None:
        self.open_listing = open_listing
        self.ledger = ledger
        self.name = name
        self.path = path
        self.logger = logger
        self.progress = progress
        self.listed = 0

    def from_detail(self, raw: dict) -> dict:
        """A confirmed row is handled as its detail shows it."""
        return raw

    def scan(
        self, params: dict, on_answer: Callable[[Answer], None], seen: set[int]
    ) -> Generator[Item, None, PageWindow]:
        """Every row of the list with ``params`` and its id, in offset order (pages fetched ahead,
        :mod:`tap_invoiz.paging`); ``on_answer`` sees each answer before its rows. Each id is added to ``seen``; a row
        whose id is there already (the same row on two pages: a page shift) is handled once. Returns the window."""
        window = self.open_listing(params, on_answer)
        for raw in window.rows():
            rid = row_id(raw, self.name, self.path)
            if rid in seen:
                continue
            seen.add(rid)
            yield rid, raw
        return window


class FullListing(Listing):
    """Every row, then the tracked ids it did not show (see the module docstring)."""

    by_state = False

    def __init__(
        self,
        open_listing: Callable[[dict, Callable[[Answer], None]], PageWindow],
        ledger: Ledger,
        *,
        selected: bool,
        name: str,
        path: str,
        logger: logging.Logger,
        progress: StreamProgress,
    ) -> None:
        super().__init__(open_listing, ledger, name=name, path=path, logger=logger, progress=progress)
        self.selected = selected

    def items(self) -> Iterator[Item]:
        seen = yield from self._list_everything()
        self.listed = len(seen)
        ledger = self.ledger
        ledger.keep_outside_seen(seen)
        # Deletions: only after a scan that ran to its end (an exception above ends the run before this point).
        candidates = sorted(i for i in ledger.fingerprints if i not in seen) if self.selected else []
        self.progress.candidates = len(candidates)
        if len(candidates) > max(50, len(ledger.fingerprints) // 10):
            self.logger.warning(
                "%s: %d of %d tracked rows are missing from the listing; confirming each with a detail request "
                "(only rows invoiz answers 404/NOT_FOUND for are marked deleted)",
                self.name,
                len(candidates),
                len(ledger.fingerprints),
            )
        for candidate in candidates:
            yield candidate, None

    def _on_answer(self, answer: Answer) -> None:
        if self.ledger.codes is not None:  # invoices: the counts of the last answer, for listing by state
            self.ledger.counts = parse_counts(answer.meta)

    def _list_everything(self) -> Generator[Item, None, set[int]]:
        """One scan, or two when the first looked inconsistent; returns the ids seen."""
        seen: set[int] = set()
        for scan in (1, 2):
            seen_now: set[int] = set()
            window = yield from self.scan({}, self._on_answer, seen_now)
            counts = [c for c in window.counts if c is not None]
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
