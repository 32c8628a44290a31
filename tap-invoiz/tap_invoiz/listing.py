"""State-aware listing of invoices: a run costs what changed, not what exists.

invoiz has no updated-since filter, but ``GET invoice?filter=<state>`` lists one state and (❓, seen in the web app's
code) every list answer carries ``meta.filter.<state>.count`` for all states. The tap keeps the state of every
tracked invoice (one byte per id in the stream state) and, when that is cheaper than a full listing:

1. **Lists fully the states whose rows change in place**: ``draft`` (edits), ``locked``, ``partiallyPaid`` (further
   payments), ``dunned`` (next dunning level) — :data:`LISTED`. Every row is fingerprinted as in a full listing.
2. **Confirms every id that left those lists** with a detail request: 404 → tombstone; otherwise its new state is
   recorded and the row emitted if it changed (paid, cancelled, …; its fingerprint is taken from the detail, cut to
   the fields list rows have).
3. **Reconciles the large, quiet states** ``cancelled`` and ``paid`` (:data:`QUIET`) by their counts: the count from
   ``meta.filter`` minus the ids the state knows in that state is the number of unseen entrants (an invoice written
   *and* paid between two runs, a Storno of a paid invoice). A positive difference is resolved by a targeted scan,
   newest first (``orderBy=date&desc=true``), up to :data:`TARGETED_PAGES` pages; failing that — or for a negative
   difference (an id left the state unseen) — the state is listed fully and each id missing from it is confirmed with
   a detail request. ``cancelled`` is resolved before ``paid`` because invoices only enter it, so what it finds also
   explains ``paid``'s count. At the end every state's count must equal what the tap knows, or the run falls back.
4. **Audits a slice**: ``1/full_scan_every`` of the full listing (``filter=all``, by date) per run, so that a change
   neither the lists nor the counts can reveal (an edit of a paid invoice that keeps its state) arrives within
   ``full_scan_every`` runs.

Self-check: every answer must carry ``meta.filter`` with integer counts for ``all`` and the six states that add up
to ``all``; ``meta.count`` must equal the active filter's count; every row of ``filter=X`` must have ``state == X``;
the counts must not move during the run. Anything else → :class:`Fallback` → the run lists everything
(``filter=all``) as without this module, saying why once (WARNING). A first run, ``--full-refresh``,
``full_scan_every = 1``, ``start_date``, a state without the per-id states, or a plan that would not save at least
two thirds of the full listing's requests (small accounts) also list everything.
"""

from __future__ import annotations

import base64
import math
import typing as t
import zlib
from collections import Counter

from tap_invoiz import fingerprint as fpmod
from tap_invoiz.responses import response_body
from tap_invoiz.records import Unconvertible, to_integer

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from tap_invoiz.streams import InvoicesStream

#: Invoice states in the order of their one-byte codes (code 0: anything else, never tracked incrementally).
STATES = ("draft", "locked", "partiallyPaid", "paid", "dunned", "cancelled")
CODE = {name: code for code, name in enumerate(STATES, start=1)}
#: Listed fully on every incremental run (their rows change without leaving the state).
LISTED = ("draft", "locked", "partiallyPaid", "dunned")
#: Reconciled by counts, in this order (invoices never leave ``cancelled``).
QUIET = ("cancelled", "paid")
#: Pages of a targeted (newest first) scan before a quiet state is listed fully.
TARGETED_PAGES = 2
#: Default of the setting full_scan_every (see README, "State-aware listing").
DEFAULT_FULL_SCAN_EVERY = 96
STATES_FORMAT = "st1"  # "st1:" + base64(zlib(one byte per id, ids in ascending order like the fingerprints))
COUNT_KEYS = ("all", *STATES)


class Fallback(Exception):  # noqa: N818 - a decision, not an error
    """The incremental plan cannot be trusted for this run: list everything instead."""


# -- state encoding ----------------------------------------------------------------------------------------------


def encode_states(codes: dict[int, int], ids: Iterable[int]) -> str:
    """One byte per id of ``ids`` (ascending, as the fingerprints are stored), compressed."""
    raw = bytes(codes.get(row_id, 0) for row_id in sorted(ids))
    return f"{STATES_FORMAT}:" + base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def decode_states(text: object, ids: Iterable[int]) -> dict[int, int]:
    """Inverse of :func:`encode_states`; ValueError if it does not fit ``ids``."""
    if not isinstance(text, str):
        msg = "no per-id states"
        raise ValueError(msg)
    prefix, _, payload = text.partition(":")
    if prefix != STATES_FORMAT:
        msg = f"unknown states format {prefix!r}"
        raise ValueError(msg)
    raw = zlib.decompress(base64.b64decode(payload))
    ordered = sorted(ids)
    if len(raw) != len(ordered):
        msg = "per-id states do not match the fingerprints"
        raise ValueError(msg)
    return dict(zip(ordered, raw))


def state_code(raw: dict) -> int:
    state = raw.get("state")
    return CODE.get(state, 0) if isinstance(state, str) else 0


def parse_counts(meta: object) -> dict[str, int] | None:
    """``meta.filter`` as ``{all, draft, …, cancelled: int}``, or None unless present, integer and consistent."""
    flt = meta.get("filter") if isinstance(meta, dict) else None
    if not isinstance(flt, dict):
        return None
    counts = {}
    for key in COUNT_KEYS:
        entry = flt.get(key)
        value = entry.get("count") if isinstance(entry, dict) else None
        if isinstance(value, bool) or value is None:
            return None
        try:
            counts[key] = to_integer(value)
        except Unconvertible:
            return None
        if counts[key] < 0:
            return None
    if sum(counts[s] for s in STATES) != counts["all"]:
        return None
    return counts


# -- planning ----------------------------------------------------------------------------------------------------


def full_scan_every(stream: InvoicesStream) -> int:
    value = stream.config.get("full_scan_every")
    return DEFAULT_FULL_SCAN_EVERY if value is None else max(1, int(value))


def audit_pages(total_pages: int, every: int, run: int) -> range:
    """The pages (0-based) of a full listing that run number ``run`` audits: ``every`` runs cover all of them."""
    r = run % every
    return range(total_pages * r // every, total_pages * (r + 1) // every)


def estimated_requests(counts: dict[str, int], page: int, every: int) -> tuple[float, int]:
    """(incremental, full) list requests of a run without changes, from the last run's counts (the cost formula)."""
    full = max(1, math.ceil(counts["all"] / page))
    incremental = sum(max(1, math.ceil(counts[s] / page)) for s in LISTED) + full / every
    return incremental, full


def plan(stream: InvoicesStream) -> str | None:
    """None if this run may list by state; else why it lists everything (for the log)."""
    every = full_scan_every(stream)
    if every == 1:
        return "full_scan_every is 1"
    if not stream.selected:
        return "invoices not selected"
    if not stream._had_prior_state or not stream._fps:
        return "no prior state"
    if stream._entry is not None and stream._entry.must_list_everything:
        return "a full refresh of this account is not complete yet"
    if stream._start_date:
        return "start_date is set"
    entry = stream.account_states(stream).get(stream.account) or {}
    counts = entry.get("counts")
    if not isinstance(counts, list) or len(counts) != len(COUNT_KEYS):
        return "no counts from an earlier run"
    counts = dict(zip(COUNT_KEYS, counts))
    if stream._codes_loaded is None:
        return "no per-id states in the state"
    if any(code == 0 for code in stream._codes_loaded.values()):
        return "invoices in a state the tap does not list by state"
    payments = stream._payments_map()
    payments_entry = stream._payments_entry
    if payments is not None and (
        set(payments) != set(stream._fps) or (payments_entry is not None and payments_entry.must_list_everything)
    ):
        return "invoice_payments needs every invoice once"
    incremental, full = estimated_requests(counts, stream.page_size, every)
    if incremental * 3 > full:  # a run with changes adds detail requests and maybe scans: worth it from a third
        return f"listing by state would not save two thirds of the requests ({incremental:.1f} vs {full})"
    return None


# -- the incremental run -----------------------------------------------------------------------------------------


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
            raise Fallback("the list answer has no usable meta.filter counts (missing, not integers, or they do "
                           "not add up to all)")
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
            raise Fallback(f"meta.count of filter={active} ({count}) differs from meta.filter.{active}.count "
                           f"({counts[active]})")
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
            method="GET", url=s.get_url(self.context),
            params={"offset": offset, "limit": s.page_size, "filter": active, **params}, headers=s.http_headers,
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
        s.logger.info("%s: listing by state (run %d of a %d-run audit cycle): %s fully, paid and cancelled by their "
                      "counts", s.name, (s._runs - 1) % full_scan_every(s) + 1, full_scan_every(s), ", ".join(LISTED))
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
            raise Fallback("counts do not add up after reconciling: " + ", ".join(
                f"{st} {self.tally[CODE[st]]} known vs {self.snapshot[st]}" for st in wrong))
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
        self.s.logger.info("%s: reconciling %s by listing it fully (%d known, %d counted)", self.s.name, state,
                           self.tally[code], self.snapshot[state])
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
