"""Turn the results of `make bench` (bench/suite.py) into the Markdown report: printed, and written to docs/BENCHMARKS.md."""

from __future__ import annotations

import statistics
import typing as t
from collections.abc import Callable, Iterable

from bench.runs import Outcome, TapSettings

if t.TYPE_CHECKING:
    from bench.plan import Results

TARGETS = {
    "backfill_ratio": 1.25,  # ≤
    "wide_backfill_ratio": 1.25,  # ≤ (1b: max_concurrency 8)
    "tap_vs_loop": 0.8,  # ≥
    "load_rate": 8000,  # ≥ invoices/s
    "incremental_ratio": 0.15,  # ≤ (time and requests)
    "tap_rss_ratio": 1.3,  # ≤ (big ÷ small)
    "dbt_seconds": 15,  # < at the big size
}
# Within this share of the fastest, a grid cell counts as equally fast (these machines are noisy); the recommendation
# then takes the one that asks the least of invoiz.
GRID_TIE = 0.05


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def runs_table(rows: list[tuple[str, list, Callable]], runs: int) -> str:
    """One line per figure: each run's value, then the median."""
    header = ["figure", *[f"run {i + 1}" for i in range(runs)], "**median**"]
    body = []
    for label, values, show in rows:
        body.append([label, *[show(v) for v in values], f"**{show(median(values))}**"])
    return table(header, body)


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**not met**")


def _floor(outcome: Outcome, latency_ms: float) -> float:
    """The latency floor: requests × latency ÷ the concurrency the tap really used (at least 1)."""
    return outcome.requests * latency_ms / 1000 / max(1, outcome.peak_concurrency)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _count(value: float | None) -> str:
    return "–" if value is None else f"{round(value):,}"


def _mb(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} MB"


def _problems(outcomes: list[Outcome], reference: str | None = None) -> list[str]:
    """Problems of these runs; with a reference fingerprint, also whether they loaded other values than it."""
    seen: list[str] = []
    for outcome in outcomes:
        seen += [p for p in outcome.problems if p not in seen]
        content = getattr(outcome, "content", None)
        differs = "values differ from the reference load"
        if reference and content and content != reference and differs not in seen:
            seen.append(differs)
    return seen


def _loaded(outcomes: list[Outcome], reference: str | None = None) -> str:
    problems = _problems(outcomes, reference)
    return "ok" if not problems else "; ".join(problems)


def _reference(outcomes: list[Outcome]) -> str | None:
    return next((o.content for o in outcomes if getattr(o, "content", None)), None)


class Report:
    def __init__(self, results: Results) -> None:
        self.r = results
        self.plan = results.plan
        self.latency = results.plan.latency_ms
        self.summary: list[list[str]] = []

    # -- sections ---------------------------------------------------------------------------------------------------
    def backfill(self) -> str:
        r, runs = self.r, self.plan.runs
        floors = [_floor(o, self.latency) for o in r.backfills]
        ratios = [o.seconds / f for o, f in zip(r.backfills, floors)]
        ratio = median(ratios)
        used = median(o.peak_concurrency for o in r.backfills)
        self.summary.append(
            [
                "1",
                f"backfill ÷ latency floor ({self.plan.big:,} invoices, {self.latency:g} ms, {r.defaults.label()}, "
                f"concurrency used {fmt(used, 0)})",
                _x(ratio),
                f"≤ {TARGETS['backfill_ratio']}",
                verdict(ratio is not None and ratio <= TARGETS["backfill_ratio"]),
            ]
        )
        text = runs_table(
            [
                (
                    "backfill (`meltano run --full-refresh tap-invoiz target-postgres`)",
                    [o.seconds for o in r.backfills],
                    _seconds,
                ),
                ("requests the sandbox counted", [o.requests for o in r.backfills], _count),
                (
                    "list requests in flight at once (concurrency used)",
                    [o.peak_concurrency for o in r.backfills],
                    _count,
                ),
                ("latency floor = requests × latency ÷ concurrency used", floors, _seconds),
                ("**backfill ÷ floor**", ratios, _x),
                ("records the target received", [o.received for o in r.backfills], _count),
            ],
            runs,
        )
        return (
            f"## 1. Backfill against the latency floor\n\n{self.plan.big:,} invoices and their contacts, "
            f"{self.latency:g} ms per request, tap settings from meltano.yml ({r.defaults.label()}). "
            f"Rows loaded and not deleted, metadata present: {_loaded(r.backfills)}.\n\n{text}\n"
        )

    def wide_backfill(self) -> str:
        r, runs, plan = self.r, self.plan.runs, self.plan
        wide_taps, wide_loads = getattr(r, "wide_taps", []), getattr(r, "wide_loads", [])  # older --save'd results
        if not wide_taps:
            return ""
        rows, ratios = [], {}
        for label, outcomes in (("tap-invoiz > /dev/null", wide_taps), ("tap-invoiz → target-postgres", wide_loads)):
            floors = [_floor(o, self.latency) for o in outcomes]
            ratios[label] = [o.seconds / f if f else None for o, f in zip(outcomes, floors)]
            rows += [
                (f"{label}", [o.seconds for o in outcomes], _seconds),
                ("  requests / in flight", [o.requests for o in outcomes], _count),
                ("  list requests in flight at once", [o.peak_concurrency for o in outcomes], _count),
                ("  latency floor = requests × latency ÷ in flight", floors, _seconds),
                (f"  **÷ floor ({label.split()[-1]})**", ratios[label], _x),
                ("  tap CPU seconds", [o.tap_cpu_s for o in outcomes], _seconds),
            ]
        rows.append(("target CPU seconds (tap → target)", [o.target_cpu_s for o in wide_loads], _seconds))
        for label, values in ratios.items():
            ratio = median(values)
            self.summary.append(
                [
                    "1b",
                    f"backfill ÷ latency floor, {label} ({plan.wide_invoices:,} invoices, {self.latency:g} ms, "
                    f"page_size {r.defaults.page_size}, max_concurrency {plan.wide_concurrency})",
                    _x(ratio),
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
            f"per row is section 2).{load} Loaded correctly: {_loaded(wide_loads)}.\n\n" + runs_table(rows, runs) + "\n"
        )

    def incremental(self) -> str:
        r, runs = self.r, self.plan.runs
        time_ratios = [i.seconds / b.seconds for i, b in zip(r.incrementals, r.backfills)]
        request_ratios = [_ratio(i.requests, b.requests) for i, b in zip(r.incrementals, r.backfills)]
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
                _x(time_ratio),
                f"≤ {limit}",
                verdict(time_ratio is not None and time_ratio <= limit),
            ],
            [
                "4",
                "no-change run ÷ backfill, requests",
                _x(request_ratio),
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
                    _seconds,
                ),
                ("requests", [o.requests for o in r.incrementals], _count),
                ("records the tap emitted (its log)", emitted, _count),
                ("records the target received (its log)", received, _count),
                ("**time ÷ backfill**", time_ratios, _x),
                ("**requests ÷ backfill**", request_ratios, _x),
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
        tap_rate = [_ratio(o.emitted, o.seconds) for o in r.taps]
        loop_rate = [_ratio(o.rows, o.seconds) for o in r.loops]
        ratios = [_ratio(t, b) for t, b in zip(tap_rate, loop_rate)]
        tap_cpu_rate = [_ratio(o.emitted, o.tap_cpu_s) for o in r.taps]
        loop_cpu_rate = [_ratio(o.rows, o.tap_cpu_s) for o in r.loops]
        ratio = median(ratios)
        self.summary.append(
            [
                "2",
                "tap rows/s ÷ plain requests + json loop rows/s (no latency)",
                _x(ratio),
                f"≥ {TARGETS['tap_vs_loop']}",
                verdict(ratio is not None and ratio >= TARGETS["tap_vs_loop"]),
            ]
        )
        text = runs_table(
            [
                ("rows (invoices + contacts)", [o.emitted for o in r.taps], _count),
                ("tap-invoiz > /dev/null", [o.seconds for o in r.taps], _seconds),
                ("plain loop > /dev/null", [o.seconds for o in r.loops], _seconds),
                ("tap rows/s", tap_rate, _count),
                ("loop rows/s", loop_rate, _count),
                ("**tap ÷ loop (wall clock)**", ratios, _x),
                ("tap CPU seconds (user + system)", [o.tap_cpu_s for o in r.taps], _seconds),
                ("loop CPU seconds", [o.tap_cpu_s for o in r.loops], _seconds),
                ("tap rows per CPU second", tap_cpu_rate, _count),
                ("loop rows per CPU second", loop_cpu_rate, _count),
                ("tap ÷ loop (per CPU second)", [_ratio(t, b) for t, b in zip(tap_cpu_rate, loop_cpu_rate)], _x),
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
        reference = _reference(default_outcomes)
        for name, outcomes in r.loads.items():
            seconds = median(o.seconds for o in outcomes)
            rate = _ratio(expected_invoices, seconds)
            safe = not _problems(outcomes, reference)
            rows.append(
                [
                    name,
                    " / ".join(f"{o.seconds:.1f}" for o in outcomes),
                    _seconds(seconds),
                    _count(rate),
                    _x(_ratio(default_seconds, seconds)),
                    _loaded(outcomes, reference),
                ]
            )
            if safe and (best is None or seconds < best[1]):
                best = (name, seconds, rate)
        default_name = next(iter(r.loads), None)
        if default_name:
            rate = _ratio(expected_invoices, default_seconds)
            self.summary.append(
                [
                    "3",
                    f"load rate, invoices/s, {default_name}",
                    _count(rate),
                    f"≥ {TARGETS['load_rate']:,}",
                    verdict(rate is not None and rate >= TARGETS["load_rate"]),
                ]
            )
        if best:
            self.summary.append(
                [
                    "3",
                    f"load rate, invoices/s, fastest safe variant: {best[0]}",
                    _count(best[2]),
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
                    _mb(median(o.tap_rss_mb for o in outcomes)),
                    _mb(median(o.target_rss_mb for o in outcomes)),
                    _seconds(median(o.tap_cpu_s for o in outcomes)),
                    _seconds(median(o.target_cpu_s for o in outcomes)),
                    _seconds(median(o.seconds for o in outcomes)),
                    _loaded(outcomes),
                ]
            )
        text = table(
            ["invoices", "tap peak RSS", "target peak RSS", "tap CPU", "target CPU", "wall clock", "loaded correctly?"],
            rows,
        )
        if len(sizes) == 2:
            small, big = (r.memory[s] for s in sizes)
            tap_ratio = _ratio(median(o.tap_rss_mb for o in big), median(o.tap_rss_mb for o in small))
            target_ratio = _ratio(median(o.target_rss_mb for o in big), median(o.target_rss_mb for o in small))
            self.summary.append(
                [
                    "5",
                    f"tap peak RSS {sizes[1]:,} ÷ {sizes[0]:,} invoices",
                    _x(tap_ratio),
                    f"≤ {TARGETS['tap_rss_ratio']}",
                    verdict(tap_ratio is not None and tap_ratio <= TARGETS["tap_rss_ratio"]),
                ]
            )
            self.summary.append(
                ["5", f"target peak RSS {sizes[1]:,} ÷ {sizes[0]:,} invoices", _x(target_ratio), "(no target)", "–"]
            )
            text += f"\n\nRatio {sizes[1]:,} ÷ {sizes[0]:,}: tap **{_x(tap_ratio)}**, target **{_x(target_ratio)}**."
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
                    _seconds(median(times)),
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
                    _seconds(seconds),
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

    def grid(self) -> tuple[str, str]:
        r = self.r
        rows, cells = [], []
        reference = _reference([o for s, outcomes in r.grid.items() if not s.batch for o in outcomes])
        for settings, outcomes in r.grid.items():
            seconds = median(o.seconds for o in outcomes)
            used = median(o.peak_concurrency for o in outcomes)
            floor = median(_floor(o, self.latency) for o in outcomes)
            safe = not _problems(outcomes, reference)
            cells.append((settings, seconds, safe))
            rows.append(
                [
                    str(settings.page_size),
                    str(settings.max_concurrency),
                    "yes" if settings.batch else "no",
                    _seconds(seconds),
                    _count(median(o.requests for o in outcomes)),
                    _count(used),
                    _seconds(floor),
                    _x(_ratio(seconds, floor)),
                    _mb(median(o.tap_rss_mb for o in outcomes)),
                    _loaded(outcomes, reference),
                ]
            )
        text = table(
            [
                "page_size",
                "max_concurrency",
                "BATCH",
                "backfill",
                "requests",
                "in flight",
                "floor",
                "÷ floor",
                "tap RSS",
                "loaded correctly?",
            ],
            rows,
        )
        recommendation = self.recommend(cells)
        runs = self.plan.grid_runs
        batch_pages = sorted({s.page_size for s in r.grid if s.batch})
        batch_note = (
            f" BATCH changes how the target loads, not how the tap pages, so it is tried at page_size "
            f"{', '.join(map(str, batch_pages))} only."
            if batch_pages
            else ""
        )
        return (
            f"## Grid: page_size × max_concurrency × BATCH\n\nBackfills of {self.plan.small:,} invoices (and "
            f"their contacts) at {self.latency:g} ms per request, tap-invoiz | target-postgres run directly (as in "
            "5: no Meltano start-up, so the differences show), "
            f"{'median of ' + str(runs) + ' runs' if runs > 1 else 'one run'} per cell, target settings from "
            f"meltano.yml, into an empty database. *in flight* is the concurrency the tap really used; *floor* = "
            f"requests × latency ÷ in flight.{batch_note} The mix of latency and per-row work is the same at "
            f"any size (both grow with the rows), only the fixed start-up (≈ 2 s) weighs more at "
            f"{self.plan.small:,}.\n\n{text}\n\n{recommendation}\n"
        ), recommendation

    def recommend(self, cells: list[tuple[TapSettings, float | None, bool]]) -> str:
        safe = [(s, t) for s, t, ok in cells if ok and t is not None]
        unsafe_batch = any(s.batch and not ok for s, _, ok in cells)
        if not safe:
            return "**Recommendation:** none — no combination loaded correctly."
        fastest = min(t for _, t in safe)
        tied = [(s, t) for s, t in safe if t <= fastest * (1 + GRID_TIE)]
        # Among the equally fast: the fewest parallel requests, then the fewest requests (largest pages).
        choice, seconds = min(tied, key=lambda c: (c[0].max_concurrency, -c[0].page_size, c[1]))
        load = self._best_load_variant()
        lines = [
            f"**Recommendation:** page_size **{choice.page_size}**, max_concurrency **{choice.max_concurrency}**, "
            f"BATCH **{'on' if choice.batch else 'off'}**" + (f"; target-postgres **{load}**" if load else "") + ".",
            "",
            f"- Fastest safe cell: {_seconds(fastest)}; the recommendation ({_seconds(seconds)}) is within "
            f"{GRID_TIE:.0%} of it, and among those it asks the least of invoiz (fewest parallel requests, "
            "then fewest requests).",
        ]
        if load:
            lines.append(
                "- target-postgres: the fastest variant in 3 that loaded correctly. Its peak memory is not "
                "measured here (5 runs with meltano.yml's settings); `batch_size_rows` holds that many "
                "records in memory before a write."
            )
        if unsafe_batch:
            lines.append(
                "- BATCH is not safe here: target-postgres 0.8.1 loads batch files without the `_sdc_*` "
                "metadata (`_sdc_batched_at`, `_sdc_extracted_at`, `_sdc_table_version` stay empty), which "
                "dbt's `loaded_at` and source freshness read; the batch files are also never deleted."
            )
        lines.append(
            "- meltano.yml's defaults are a decision, not this table: the grid has one run per cell, and at "
            "100,000 invoices (section 1) the backfill is bound by CPU, not by the latency. Why meltano.yml "
            "has the values it has is said next to them (`DEFAULT_MAX_CONCURRENCY` in tap_invoiz/paging.py, "
            "the target's config in meltano.yml)."
        )
        return "\n".join(lines)

    def _best_load_variant(self) -> str | None:
        best = None
        reference = _reference(next(iter(self.r.loads.values()), []))
        for name, outcomes in self.r.loads.items():
            seconds = median(o.seconds for o in outcomes)
            if not _problems(outcomes, reference) and seconds is not None and (best is None or seconds < best[1]):
                best = (name, seconds)
        return best[0] if best else None

    def _compared_values(self) -> bool:
        outcomes = [o for group in (*self.r.loads.values(), *self.r.grid.values()) for o in group]
        return any(getattr(o, "content", None) for o in outcomes)

    # -- the whole report -------------------------------------------------------------------------------------------
    def render(self) -> str:
        r, plan = self.r, self.plan
        if plan.only_tap:
            sections = [self.wide_backfill(), self.tap_vs_loop()]
            grid_text = ""
        else:
            sections = [
                self.backfill(),
                self.wide_backfill(),
                self.tap_vs_loop(),
                self.load_rates(),
                self.incremental(),
                self.memory(),
                self.dbt(),
            ]
            grid_text, _ = self.grid()
        sections = [section for section in sections if section]
        order = {"1": 0, "1b": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6}
        summary = table(
            ["#", "figure", "median", "target", "met?"], sorted(self.summary, key=lambda row: order.get(row[0], 9))
        )
        machine = table(["", ""], [[k, v] for k, v in r.machine.items()])
        concurrency = (
            f"meltano.yml sets max_concurrency {r.defaults.max_concurrency}; the installed tap "
            + (
                "declares the setting"
                if r.declares_concurrency
                else "does **not** declare it yet and fetches pages one after another"
            )
            + "; the tables show the concurrency the sandbox actually saw (*in flight*)."
        )
        kind = "**quick run** (small numbers, for development only)" if plan.quick else "full run"
        return "\n".join(
            [
                "# Benchmarks",
                "",
                f"Generated by `make bench` (`bench/suite.py`), {kind}, started {r.started_at}, took "
                f"{r.seconds_total / 60:.1f} min. Every figure is the **median of {plan.runs} runs** unless its table "
                "says otherwise (the grid: one run per cell). The invoiz sandbox (seed 42, clock 2026-11-01, "
                f"{plan.big:,} and {plan.small:,} invoices, contacts = invoices ÷ 5) runs inside the benchmark process; "
                "PostgreSQL is real. " + concurrency,
                "",
                "Re-run: `make bench` (writes this file; about 20 minutes on a quiet 2-core machine — 32 minutes with "
                "other test suites running — most of it target-postgres loading 100k invoices 25 times; `--runs 2` "
                "cuts it by a third), or "
                "`.venv/bin/python -m bench.suite --quick` (2–4 minutes, prints only); `--output PATH`, `--save`/"
                "`--render` (keep the raw results, render the report again). "
                "Set `PGHOST` etc. to use your PostgreSQL instead of the embedded one; the benchmark works in a "
                "database `bench_load` that it drops at the end. Run it on a quiet machine: the tap, target-postgres, "
                "the sandbox and PostgreSQL share the same cores, so other load shifts every figure; compare ratios "
                "within one run rather than seconds across machines.",
                "",
                "## Machine",
                "",
                machine,
                "",
                "## Targets",
                "",
                summary,
                "",
                *sections,
                grid_text,
                *kept_sections(),
                "## How it is measured",
                "",
                "- Time is wall-clock (`time.perf_counter`) around the whole command. *Requests* are what the sandbox "
                "counted (token, list and detail requests). *In flight* is the peak number of list requests of one kind "
                "the sandbox was answering at once (its `max_in_flight`: from arrival, through the latency sleep, until "
                "answered).",
                "- The latency is the sandbox's fixed per-request sleep; building a page costs the sandbox CPU on top "
                "(about 15,000–20,000 rows/s, invoiz_sandbox/README.md), on the same 2 cores as everything else. A real "
                "invoiz also needs time to build a page, inside its latency.",
                "- Every backfill starts from an empty database `bench_load` and an empty Meltano system database "
                "(temporary `MELTANO_DATABASE_URI`), so runs share no state. Meltano runs get their settings only "
                "through environment variables (`ops/invoiz_ops/pipeline.py`), as `make demo` and the end-to-end tests do.",
                "- `meltano run` gets a Meltano system directory of its own (`MELTANO_SYS_DIR_ROOT`, the installed "
                "plugin venvs linked in): Meltano writes each plugin's catalog, config and state to "
                "`.meltano/run/<plugin>/`, and runs of other people in the same checkout would overwrite them.",
                "- *Loaded correctly* is checked in PostgreSQL after each backfill: live rows (`_sdc_deleted_at` null) = "
                "the sandbox's invoices and contacts, `_sdc_batched_at` filled (dbt's `loaded_at` and source "
                "freshness read it)"
                + (
                    ", and the same values as the reference load (the default variant in 3, the "
                    "first non-BATCH cell in the grid): a sum of PostgreSQL row hashes over every column except `_sdc_*`"
                    if self._compared_values()
                    else ""
                )
                + ". The no-change run's records come from the tap's log "
                "(singer-sdk's `record_count` metric) and target-postgres's own count (\"Reader … completed processing\").",
                "- The baseline loop is `bench/plain_loop.py`: one `requests.Session`, `json.loads` per page, one "
                "`json.dumps` line per row, the next page asked for after this page's rows are written (its "
                '`--ahead` variant overlaps the two as the tap does: "Profile of the tap").',
                "",
            ]
        )


def render(results: Results) -> str:
    return Report(results).render()


#: Headings of the sections this report writes. Every other ``## `` section of docs/BENCHMARKS.md (written by other
#: benchmark scripts: bench/listing.py, bench/profile_tap.py, the marts benchmark, …) is carried over verbatim when
#: `make bench` rewrites the file, before "How it is measured"; the fleet section (between its markers) is carried
#: over by bench.fleet.keep_fleet_section.
OWN_HEADINGS = (
    "## Machine",
    "## Targets",
    "## 1. ",
    "## 1b. ",
    "## 2. ",
    "## 3. ",
    "## 4. ",
    "## 5. ",
    "## 6. ",
    "## Grid: ",
    "## How it is measured",
)


def kept_sections(text: str | None = None) -> list[str]:
    """The sections of docs/BENCHMARKS.md (or of ``text``) that other scripts write, each followed by an empty line."""
    if text is None:
        from pathlib import Path

        path = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    from bench.fleet import BEGIN, END

    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + text[text.index(END) + len(END) :]
    out: list[str] = []
    for part in ("\n" + text).split("\n## ")[1:]:
        section = "## " + part
        if not section.startswith(OWN_HEADINGS):
            out += [section.rstrip("\n"), ""]
    return out
