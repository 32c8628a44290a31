"""Listing invoices by state, the plan: which states are listed and reconciled, the audit slices, the cost formula,
and whether this run may list by state at all (:func:`plan`). The per-id states and counts are kept by
:mod:`tap_invoiz.ledger`."""

from __future__ import annotations

import math
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from tap_invoiz.ledger import Ledger

#: Listed fully on every incremental run (their rows change without leaving the state).
LISTED = ("draft", "locked", "partiallyPaid", "dunned")
#: Reconciled by counts, in this order (invoices never leave ``cancelled``).
QUIET = ("cancelled", "paid")
#: Pages of a targeted (newest first) scan before a quiet state is listed fully.
TARGETED_PAGES = 2
#: Default of the setting full_scan_every (see README, "State-aware listing").
DEFAULT_FULL_SCAN_EVERY = 96


class Fallback(Exception):  # a decision, not an error
    """The incremental plan cannot be trusted for this run: list everything instead."""


# -- planning ----------------------------------------------------------------------------------------------------


def full_scan_every(config: Mapping) -> int:
    value = config.get("full_scan_every")
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


def plan(ledger: Ledger, payments: Ledger | None, *, selected: bool, every: int, page_size: int) -> str | None:
    """None if this run may list by state; else why it lists everything (for the log)."""
    if every == 1:
        return "full_scan_every is 1"
    if not selected:
        return "invoices not selected"
    if not ledger.had_prior_state or not ledger.fingerprints:
        return "no prior state"
    if ledger.entry.must_list_everything:
        return "a full refresh of this account is not complete yet"
    if not ledger.same_start_date:  # the invoices before start_date are known for the last run's start_date
        return "start_date differs from the last run's"
    counts = ledger.previous_counts
    if counts is None:
        return "no counts from an earlier run"
    if not ledger.codes_loaded or ledger.codes is None:
        return "no per-id states in the state"
    if any(code == 0 for code in ledger.codes.values()):
        return "invoices in a state the tap does not list by state"
    if payments is not None and (
        set(payments.fingerprints) != set(ledger.fingerprints) or payments.entry.must_list_everything
    ):
        return "invoice_payments needs every invoice once"
    incremental, full = estimated_requests(counts, page_size, every)
    if incremental >= full:  # both are exact: by state whenever a run without changes is expected to cost less
        return f"listing by state would not save requests ({incremental:.1f} vs {full} per run without changes)"
    return None
