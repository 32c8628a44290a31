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
``full_scan_every = 1``, a ``start_date`` other than the last run's, a state without the per-id states, or a plan
that would not make a run without changes cheaper than a full listing (small accounts) also list everything.

With ``start_date``, the invoices dated before it are listed and counted by invoiz like any other: the ledger keeps
their ids and states (never emitting them), so the counts stay comparable and such a run costs what one without
``start_date`` costs.
"""

from __future__ import annotations

from tap_invoiz.ledger import (
    CODE,
    COUNT_KEYS,
    STATES,
    STATES_FORMAT,
    decode_states,
    encode_states,
    parse_counts,
    state_code,
)
from tap_invoiz.listing.by_state import StateListing
from tap_invoiz.listing.full import FullListing
from tap_invoiz.listing.plan import (
    DEFAULT_FULL_SCAN_EVERY,
    LISTED,
    QUIET,
    TARGETED_PAGES,
    Fallback,
    audit_pages,
    estimated_requests,
    full_scan_every,
    plan,
)

__all__ = [
    "CODE",
    "COUNT_KEYS",
    "DEFAULT_FULL_SCAN_EVERY",
    "LISTED",
    "QUIET",
    "STATES",
    "STATES_FORMAT",
    "TARGETED_PAGES",
    "Fallback",
    "FullListing",
    "StateListing",
    "audit_pages",
    "decode_states",
    "encode_states",
    "estimated_requests",
    "full_scan_every",
    "parse_counts",
    "plan",
    "state_code",
]
