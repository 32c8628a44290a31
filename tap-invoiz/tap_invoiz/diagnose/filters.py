"""Diagnosis: the invoice filters (``filter=<state>``) and the counts of ``meta.filter``."""

from __future__ import annotations

from collections import Counter

from tap_invoiz.diagnose.checks import Checks
from tap_invoiz.diagnose.contract import FILTERS, OK, SKIP, STATE_FILTERS, WARN
from tap_invoiz.diagnose.forms import json_type, name_list, plural
from tap_invoiz.diagnose.probes import Probe
from tap_invoiz.records import OPEN_STATES, Unconvertible, to_integer


class FilterChecks(Checks):
    """The filter section of the diagnosis (a part of :class:`~tap_invoiz.diagnose.run.Diagnosis`)."""

    FALLBACK = "Handled: the tap does not rely on it and lists every invoice (`filter=all`) — correct, more requests"

    def _filters(self, invoices: Probe, filtered: dict[str, Probe]) -> None:
        section = "Filters"
        all_count = invoices.count
        counts_by_filter = self._meta_filter(invoices)
        # the whole listing, when it fitted on the page read: the true number of invoices per state
        complete = all_count is not None and len(invoices.rows) >= all_count
        tally = Counter(row.get("state") for row in invoices.rows) if complete else None

        lines = [
            "| filter | HTTP | `meta.count` | `meta.filter` count | states in the listing | row's state |",
            "|---|---|---|---|---|---|",
        ]
        state_counts: dict[str, int] = {}
        for name in FILTERS:
            probe = filtered[name]
            listed = counts_by_filter.get(name)
            # overdue depends on the server's clock and rule (contract: ❓)
            in_listing = tally.get(name, 0) if tally is not None and name != "overdue" else None
            lines.append(self._filter_line(name, probe, listed, in_listing))
            if not self._envelope_ok(probe):
                self.add(
                    f"filters.{name}",
                    section,
                    WARN,
                    f"filter={name}",
                    f"answered HTTP {probe.status}: the filter is not supported. {self.FALLBACK}",
                )
                continue
            if name in STATE_FILTERS and probe.count is not None:
                state_counts[name] = probe.count
            self._filter_verdict(name, probe, listed, in_listing, all_count)
        self._filters_sum(state_counts, all_count)
        lines.append("")
        lines.append(
            "`states in the listing`: invoices per state in the full listing read above, when it fitted on "
            "one page. `overdue` follows the server's clock and rule, so only its row's state is checked."
        )
        self.table(section, lines)

    def _meta_filter(self, invoices: Probe) -> dict[str, int | None]:
        """``meta.filter`` of the invoice list: its counts by filter name, and a finding on its form."""
        section, fallback = "Filters", self.FALLBACK
        meta = invoices.meta if isinstance(invoices.meta, dict) else {}
        meta_filter = meta.get("filter")
        counts_by_filter: dict[str, int | None] = {}
        if meta_filter is None:
            self.add("filters.meta_filter", section, WARN, "meta.filter", f"not sent on the invoice list. {fallback}")
            return counts_by_filter
        if not isinstance(meta_filter, dict):
            self.add(
                "filters.meta_filter",
                section,
                WARN,
                "meta.filter",
                f"a JSON {json_type(meta_filter)}, not an object keyed by filter name. {fallback}",
            )
            return counts_by_filter
        for name, entry in meta_filter.items():
            value = entry.get("count") if isinstance(entry, dict) else None
            try:
                counts_by_filter[str(name)] = to_integer(value) if not isinstance(value, bool) else None
            except Unconvertible:
                counts_by_filter[str(name)] = None
        lacking = [name for name in ("all", *FILTERS) if counts_by_filter.get(name) is None]
        keys = sorted(counts_by_filter, key=lambda n: (("all", *FILTERS).index(n) if n in ("all", *FILTERS) else 99, n))
        if lacking:
            self.add(
                "filters.meta_filter",
                section,
                WARN,
                "meta.filter",
                f"an object with {name_list(keys)}, but no `{{count}}` for {name_list(lacking)}. {fallback}",
            )
        else:
            self.add(
                "filters.meta_filter",
                section,
                OK,
                "meta.filter",
                f"an object keyed by filter name, `{{count}}` for {name_list(keys)}",
            )
        return counts_by_filter

    @staticmethod
    def _filter_line(name: str, probe: Probe, listed: int | None, in_listing: int | None) -> str:
        count = probe.count
        row_state = probe.rows[0].get("state") if probe.rows else None
        return (
            f"| `{name}` | {probe.status if probe.status is not None else probe.error} | "
            f"{'—' if count is None else count} | {'—' if listed is None else listed} | "
            f"{'—' if in_listing is None else in_listing} | "
            f"{'—' if row_state is None else '`' + str(row_state) + '`' if isinstance(row_state, str) else json_type(row_state)} |"
        )

    def _filter_verdict(
        self, name: str, probe: Probe, listed: int | None, in_listing: int | None, all_count: int | None
    ) -> None:
        say = self.verdict(f"filters.{name}", "Filters", f"filter={name}")
        count = probe.count
        problems = self._filter_problems(name, probe, listed, in_listing, all_count)
        if problems:
            say(WARN, "; ".join(problems) + f". {self.FALLBACK}")
            return
        agreed = "= `meta.filter` count" if listed is not None else "(no `meta.filter` to compare)"
        state = ("its row is open" if name == "overdue" else f"its row is `{name}`") if probe.rows else "no rows"
        say(
            OK,
            f"`meta.count` {count} {agreed}; {state}"
            + ("; equals the listing's count" if in_listing is not None else ""),
        )

    @staticmethod
    def _filter_problems(
        name: str, probe: Probe, listed: int | None, in_listing: int | None, all_count: int | None
    ) -> list[str]:
        count = probe.count
        row_state = probe.rows[0].get("state") if probe.rows else None
        problems = []
        if count is None:
            problems.append("no `meta.count`")
        if listed is not None and count is not None and count != listed:
            problems.append(f"`meta.count` {count} ≠ `meta.filter.{name}.count` {listed}")
        if name in STATE_FILTERS:
            if isinstance(row_state, str) and row_state != name:
                problems.append(f"its row is in state `{row_state}`")
            if in_listing is not None and count is not None and count != in_listing:
                problems.append(f"it counts {count}, the listing has {plural(in_listing, 'invoice')} in state `{name}`")
            truth = [n for n in (listed, in_listing) if n is not None]
            if count is not None and all_count and count == all_count and truth and any(n != count for n in truth):
                problems.append("it answers like `filter=all` (the filter seems ignored)")
        elif isinstance(row_state, str) and row_state not in OPEN_STATES:
            problems.append(f"its row is in state `{row_state}`, not an open one")
        if len(probe.rows) > 1:
            problems.append(f"`limit=1` gave {len(probe.rows)} rows")
        return problems

    def _filters_sum(self, state_counts: dict[str, int], all_count: int | None) -> None:
        section = "Filters"
        say = self.verdict("filters.sum", section, "Counts add up to all")
        if all_count is None or len(state_counts) < len(STATE_FILTERS):
            say(SKIP, "not every state filter gave a count (see above)")
            return
        total = sum(state_counts.values())
        if total == all_count:
            say(
                OK,
                f"the six state filters count {total:,} = `all` {all_count:,}: every invoice is in exactly "
                "one state filter",
            )
        else:
            more = "more" if total > all_count else "fewer"
            say(
                WARN,
                f"the six state filters count {total:,}, {more} than `all` ({all_count:,}): states overlap "
                f"or other states exist. {self.FALLBACK}",
            )
