"""Listing invoices by state, the plan: the per-id states in the state, the counts of ``meta.filter``, and whether
this run may list by state at all (:func:`plan`)."""

from __future__ import annotations

import base64
import math
import typing as t
import zlib

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


class Fallback(Exception):  # a decision, not an error
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
