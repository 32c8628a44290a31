"""The benchmark report's measured sections 1–6 (backfill, wide backfill, tap vs. plain loop, load rates, incremental,
memory, dbt); each appends its figures to the summary of targets."""

from __future__ import annotations

import typing as t

from bench.report_cells import (
    TARGETS,
    count_text,
    fmt,
    latency_floor,
    load_problems,
    loaded_text,
    mb_text,
    median,
    ratio_of,
    ratio_text,
    reference_content,
    runs_table,
    seconds_text,
    table,
    verdict,
)

if t.TYPE_CHECKING:
    from bench.plan import Results


class MeasuredSections:
    """Sections 1–6 of :class:`bench.report.Report` (which holds ``r``, ``plan``, ``latency``, ``summary``)."""

    r: Results
    summary: list[list[str]]

    def backfill(self) -> str:
        r, runs = self.r, self.plan.runs
        floors = [latency_floor(o, self.latency) for o in r.backfills]
        ratios = [o.seconds / f for o, f in zip(r.backfills, floors)]
        ratio = median(ratios)
        used = median(o.peak_concurrency for o in r.backfills)
        self.summary.append(
            [
                "1",
                f"backfill ÷ latency floor ({self.plan.big:,} invoices, {self.latency:g} ms, {r.defaults.label()}, "
                f"concurrency used {fmt(used, 0)})",
                ratio_text(ratio),
                f"≤ {TARGETS['backfill_ratio']}",
                verdict(ratio is not None and ratio <= TARGETS["backfill_ratio"]),
            ]
        )
        text = runs_table(
            [
                (
                    "backfill (`meltano run --full-refresh tap-invoiz target-postgres`)",
                    [o.seconds for o in r.backfills],
                    seconds_text,
                ),
                ("requests the sandbox counted", [o.requests for o in r.backfills], count_text),
                (
                    "list requests in flight at once (concurrency used)",
                    [o.peak_concurrency for o in r.backfills],
                    count_text,
                ),
                ("latency floor = requests × latency ÷ concurrency used", floors, seconds_text),
                ("**backfill ÷ floor**", ratios, ratio_text),
                ("records the target received", [o.received for o in r.backfills], count_text),
            ],
            runs,
        )
        return (
            f"## 1. Backfill against the latency floor\n\n{self.plan.big:,} invoices and their contacts, "
            f"{self.latency:g} ms per request, tap settings from meltano.yml ({r.defaults.label()}). "
            f"Rows loaded and not deleted, metadata present: {loaded_text(r.backfills)}.\n\n{text}\n"
        )

    def wide_backfill(self) -> str:
        r, runs, plan = self.r, self.plan.runs, self.plan
        wide_taps, wide_loads = getattr(r, "wide_taps", []), getattr(r, "wide_loads", [])  # older --save'd results
        if not wide_taps:
            return ""
        rows, ratios = [], {}
        for label, outcomes in (("tap-invoiz > /dev/null", wide_taps), ("tap-invoiz → target-postgres", wide_loads)):
            floors = [latency_floor(o, self.latency) for o in outcomes]
            ratios[label] = [o.seconds / f if f else None for o, f in zip(outcomes, floors)]
            rows += [
                (f"{label}", [o.seconds for o in outcomes], seconds_text),
                ("  requests / in flight", [o.requests for o in outcomes], count_text),
                ("  list requests in flight at once", [o.peak_concurrency for o in outcomes], count_text),
                ("  latency floor = requests × latency ÷ in flight", floors, seconds_text),
                (f"  **÷ floor ({label.split()[-1]})**", ratios[label], ratio_text),
                ("  tap CPU seconds", [o.tap_cpu_s for o in outcomes], seconds_text),
            ]
        rows.append(("target CPU seconds (tap → target)", [o.target_cpu_s for o in wide_loads], seconds_text))
        for label, values in ratios.items():
            ratio = median(values)
            self.summary.append(
                [
                    "1b",
                    f"backfill ÷ latency floor, {label} ({plan.wide_invoices:,} invoices, {self.latency:g} ms, "
                    f"page_size {r.defaults.page_size}, max_concurrency {plan.wide_concurrency})",
                    ratio_text(ratio),
                    f"≤ {TARGETS['wide_backfill_ratio']}",
                    verdict(ratio is not None and ratio <= TARGETS["wide_backfill_ratio"]),
                ]
            )
        loads = getattr(r, "load_averages", {}).get("1b")
        load = f" Load average (1/5/15 min) before: {loads[0]}; after: {loads[1]}." if loads else ""
        return (
            f"## 1b. Backfill at max_concurrency {plan.wide_concurrency} against the latency floor\n\n"
            f"{plan.wide_invoices:,} invoices and their contacts, {self.latency:g} ms per request, page_size "
            f"{r.defaults.page_size}, max_concurrency {plan.wide_concurrency}; the plugin executables run directly (as "
            "in 5: no Meltano start-up), the tap alone and piped into target-postgres (empty database, meltano.yml's "
            "target settings). With the latency spread over 8 requests at once, what is left is CPU: the tap's "
            "start-up and per-row work, the sandbox building pages, and target-postgres's load (the tap's CPU "
            f"per row is section 2).{load} Loaded correctly: {loaded_text(wide_loads)}.\n\n"
            + runs_table(rows, runs)
            + "\n"
        )

    def incremental(self) -> str:
        r, runs = self.r, self.plan.runs
        time_ratios = [i.seconds / b.seconds for i, b in zip(r.incrementals, r.backfills)]
        request_ratios = [ratio_of(i.requests, b.requests) for i, b in zip(r.incrementals, r.backfills)]
        emitted = [i.emitted for i in r.incrementals]
        received = [i.received for i in r.incrementals]
        time_ratio, request_ratio = median(time_ratios), median(request_ratios)
        known = all(x is not None for x in emitted + received)
        zero = known and all(x == 0 for x in emitted + received)
        limit = TARGETS["incremental_ratio"]
        self.summary += [
            [
                "4",
                "no-change run ÷ backfill, time",
                ratio_text(time_ratio),
                f"≤ {limit}",
                verdict(time_ratio is not None and time_ratio <= limit),
            ],
            [
                "4",
                "no-change run ÷ backfill, requests",
                ratio_text(request_ratio),
                f"≤ {limit}",
                verdict(request_ratio is not None and request_ratio <= limit),
            ],
            [
                "4",
                "records emitted by the no-change run (tap log and target's count)",
                "0" if zero else ("not 0" if known else "unknown (no count in the logs)"),
                "0",
                verdict(zero),
            ],
        ]
        text = runs_table(
            [
                (
                    "no-change run (`meltano run tap-invoiz target-postgres` after the backfill)",
                    [o.seconds for o in r.incrementals],
                    seconds_text,
                ),
                ("requests", [o.requests for o in r.incrementals], count_text),
                ("records the tap emitted (its log)", emitted, count_text),
                (
                    "invoiz records the target received (its log, without the tap's `sync_status` rows)",
                    received,
                    count_text,
                ),
                ("**time ÷ backfill**", time_ratios, ratio_text),
                ("**requests ÷ backfill**", request_ratios, ratio_text),
            ],
            runs,
        )
        return (
            "## 4. A run without changes against the backfill\n\nSame sandbox and settings as 1, run right after "
            "each backfill with the state it left. The API has no updated-since filter: contacts are listed "
            'fully every run, invoices by state where that saves requests (tap-invoiz/README.md, "Listing '
            'invoices by state"; measured on its own in "Listing by state" below, which `make bench` keeps).'
            f"\n\n{text}\n"
        )

    def tap_vs_loop(self) -> str:
        r, runs = self.r, self.plan.runs
        tap_rate = [ratio_of(o.emitted, o.seconds) for o in r.taps]
        loop_rate = [ratio_of(o.rows, o.seconds) for o in r.loops]
        ratios = [ratio_of(t, b) for t, b in zip(tap_rate, loop_rate)]
        tap_cpu_rate = [ratio_of(o.emitted, o.tap_cpu_s) for o in r.taps]
        loop_cpu_rate = [ratio_of(o.rows, o.tap_cpu_s) for o in r.loops]
        ratio = median(ratios)
        self.summary.append(
            [
                "2",
                "tap rows/s ÷ plain requests + json loop rows/s (no latency)",
                ratio_text(ratio),
                f"≥ {TARGETS['tap_vs_loop']}",
                verdict(ratio is not None and ratio >= TARGETS["tap_vs_loop"]),
            ]
        )
        text = runs_table(
            [
                ("rows (invoices + contacts)", [o.emitted for o in r.taps], count_text),
                ("tap-invoiz > /dev/null", [o.seconds for o in r.taps], seconds_text),
                ("plain loop > /dev/null", [o.seconds for o in r.loops], seconds_text),
                ("tap rows/s", tap_rate, count_text),
                ("loop rows/s", loop_rate, count_text),
                ("**tap ÷ loop (wall clock)**", ratios, ratio_text),
                ("tap CPU seconds (user + system)", [o.tap_cpu_s for o in r.taps], seconds_text),
                ("loop CPU seconds", [o.tap_cpu_s for o in r.loops], seconds_text),
                ("tap rows per CPU second", tap_cpu_rate, count_text),
                ("loop rows per CPU second", loop_cpu_rate, count_text),
                (
                    "tap ÷ loop (per CPU second)",
                    [ratio_of(t, b) for t, b in zip(tap_cpu_rate, loop_cpu_rate)],
                    ratio_text,
                ),
            ],
            runs,
        )
        loads = getattr(r, "load_averages", {}).get("2")
        load = f" Load average (1/5/15 min) before: {loads[0]}; after: {loads[1]}." if loads else ""
        return (
            f"## 2. Tap throughput against a plain loop\n\n{self.plan.big:,} invoices, no latency, page_size "
            f"{r.defaults.page_size}, one list request in flight at a time on both sides (tap max_concurrency 1: "
            "it asks for the next page while it handles this one; the plain loop asks for it after writing this "
            "page's rows). Both write JSON lines to /dev/null; the tap also fingerprints and maps every row and "
            "writes Singer messages. Wall-clock time includes the sandbox building the pages (the same for both) "
            "and each process's start-up; on a busy machine the processes wait for a core and the ratio drifts "
            'towards the per-CPU-second one. Where the tap\'s CPU goes: "Profile of the tap" below.'
            f"{load}\n\n{text}\n"
        )

    def load_rates(self) -> str:
        r = self.r
        expected_invoices = self.plan.big
        rows, best = [], None
        default_outcomes = next(iter(r.loads.values()), [])
        default_seconds = median(o.seconds for o in default_outcomes)
        reference = reference_content(default_outcomes)
        for name, outcomes in r.loads.items():
            seconds = median(o.seconds for o in outcomes)
            rate = ratio_of(expected_invoices, seconds)
            safe = not load_problems(outcomes, reference)
            rows.append(
                [
                    name,
                    " / ".join(f"{o.seconds:.1f}" for o in outcomes),
                    seconds_text(seconds),
                    count_text(rate),
                    ratio_text(ratio_of(default_seconds, seconds)),
                    loaded_text(outcomes, reference),
                ]
            )
            if safe and (best is None or seconds < best[1]):
                best = (name, seconds, rate)
        default_name = next(iter(r.loads), None)
        if default_name:
            rate = ratio_of(expected_invoices, default_seconds)
            self.summary.append(
                [
                    "3",
                    f"load rate, invoices/s, {default_name}",
                    count_text(rate),
                    f"≥ {TARGETS['load_rate']:,}",
                    verdict(rate is not None and rate >= TARGETS["load_rate"]),
                ]
            )
        if best:
            self.summary.append(
                [
                    "3",
                    f"load rate, invoices/s, fastest safe variant: {best[0]}",
                    count_text(best[2]),
                    f"≥ {TARGETS['load_rate']:,}",
                    verdict(best[2] >= TARGETS["load_rate"]),
                ]
            )
        text = table(["variant", "runs (s)", "median", "invoices/s", "speed-up", "loaded correctly?"], rows)
        return (
            f"## 3. End-to-end load rate into PostgreSQL\n\n`meltano run --full-refresh tap-invoiz target-postgres` "
            f"(no dbt) into an empty database, {self.plan.big:,} invoices plus their contacts, no latency, tap "
            f"{r.defaults.label()}. invoices/s = invoices ÷ the whole run's wall-clock time (Meltano start-up and "
            "discovery and the contacts included). *Loaded correctly* checks every invoice and contact arrived, "
            "none marked deleted, and `_sdc_batched_at` (dbt's `loaded_at` and source freshness) is filled.\n\n"
            f"{text}\n"
        )

    def memory(self) -> str:
        r = self.r
        sizes = sorted(r.memory)
        rows = []
        for size in sizes:
            outcomes = r.memory[size]
            rows.append(
                [
                    f"{size:,}",
                    mb_text(median(o.tap_rss_mb for o in outcomes)),
                    mb_text(median(o.target_rss_mb for o in outcomes)),
                    seconds_text(median(o.tap_cpu_s for o in outcomes)),
                    seconds_text(median(o.target_cpu_s for o in outcomes)),
                    seconds_text(median(o.seconds for o in outcomes)),
                    loaded_text(outcomes),
                ]
            )
        text = table(
            ["invoices", "tap peak RSS", "target peak RSS", "tap CPU", "target CPU", "wall clock", "loaded correctly?"],
            rows,
        )
        if len(sizes) == 2:
            small, big = (r.memory[s] for s in sizes)
            tap_ratio = ratio_of(median(o.tap_rss_mb for o in big), median(o.tap_rss_mb for o in small))
            target_ratio = ratio_of(median(o.target_rss_mb for o in big), median(o.target_rss_mb for o in small))
            self.summary.append(
                [
                    "5",
                    f"tap peak RSS {sizes[1]:,} ÷ {sizes[0]:,} invoices",
                    ratio_text(tap_ratio),
                    f"≤ {TARGETS['tap_rss_ratio']}",
                    verdict(tap_ratio is not None and tap_ratio <= TARGETS["tap_rss_ratio"]),
                ]
            )
            self.summary.append(
                [
                    "5",
                    f"target peak RSS {sizes[1]:,} ÷ {sizes[0]:,} invoices",
                    ratio_text(target_ratio),
                    "(no target)",
                    "–",
                ]
            )
            text += f"\n\nRatio {sizes[1]:,} ÷ {sizes[0]:,}: tap **{ratio_text(tap_ratio)}**, target **{ratio_text(target_ratio)}**."
        return (
            "## 5. Peak memory of tap and target\n\nThe plugin executables Meltano installed, run directly as "
            "`tap-invoiz --config … | target-postgres --config …` (generated config files equal to meltano.yml's "
            f"settings, {r.defaults.label()}, no latency, empty database). Each process's own peak RSS and CPU "
            "time come from `os.wait4` (`ru_maxrss`) when it exits; inside `meltano run` the plugins are "
            f"Meltano's children and their usage cannot be told apart. Medians of {self.plan.runs}.\n\n{text}\n"
        )

    def dbt(self) -> str:
        r = self.r
        rows = []
        for size in sorted(r.dbt):
            times = r.dbt[size]
            rows.append(
                [
                    f"{size:,}",
                    " / ".join(f"{t:.1f}" for t in times),
                    seconds_text(median(times)),
                    r.dbt_summary.get(size, ""),
                ]
            )
        if r.dbt:
            big = max(r.dbt)
            seconds = median(r.dbt[big])
            self.summary.append(
                [
                    "6",
                    f"`dbt build` at {big:,} invoices",
                    seconds_text(seconds),
                    f"< {TARGETS['dbt_seconds']} s",
                    verdict(seconds is not None and seconds < TARGETS["dbt_seconds"]),
                ]
            )
        text = table(["invoices", "runs (s)", "median", "dbt's result line"], rows)
        return (
            "## 6. `dbt build`\n\n`dbt build` of `transform/` (models and tests, schema `analytics`) with the dbt "
            "Meltano installed, called directly (without `meltano invoke`, which adds its own start-up), on the "
            f"data the backfill of 1 (big) and the memory runs of 5 (small) loaded.\n\n{text}\n"
        )
