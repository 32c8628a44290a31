"""The benchmark report's grid section (tap settings × load variants) and the recommendation it leads to."""

from __future__ import annotations

import typing as t

from bench.report_cells import (
    GRID_TIE,
    count_text,
    latency_floor,
    load_problems,
    loaded_text,
    mb_text,
    median,
    ratio_of,
    ratio_text,
    reference_content,
    seconds_text,
    table,
)
from bench.runs import TapSettings

if t.TYPE_CHECKING:
    from bench.plan import Results


class GridSection:
    """The grid of :class:`bench.report.Report`."""

    r: Results

    def grid(self) -> tuple[str, str]:
        r = self.r
        rows, cells = [], []
        reference = reference_content([o for s, outcomes in r.grid.items() if not s.batch for o in outcomes])
        for settings, outcomes in r.grid.items():
            seconds = median(o.seconds for o in outcomes)
            used = median(o.peak_concurrency for o in outcomes)
            floor = median(latency_floor(o, self.latency) for o in outcomes)
            safe = not load_problems(outcomes, reference)
            cells.append((settings, seconds, safe))
            rows.append(
                [
                    str(settings.page_size),
                    str(settings.max_concurrency),
                    "yes" if settings.batch else "no",
                    seconds_text(seconds),
                    count_text(median(o.requests for o in outcomes)),
                    count_text(used),
                    seconds_text(floor),
                    ratio_text(ratio_of(seconds, floor)),
                    mb_text(median(o.tap_rss_mb for o in outcomes)),
                    loaded_text(outcomes, reference),
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
            f"- Fastest safe cell: {seconds_text(fastest)}; the recommendation ({seconds_text(seconds)}) is within "
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
        reference = reference_content(next(iter(self.r.loads.values()), []))
        for name, outcomes in self.r.loads.items():
            seconds = median(o.seconds for o in outcomes)
            if not load_problems(outcomes, reference) and seconds is not None and (best is None or seconds < best[1]):
                best = (name, seconds)
        return best[0] if best else None

    def _compared_values(self) -> bool:
        outcomes = [o for group in (*self.r.loads.values(), *self.r.grid.values()) for o in group]
        return any(getattr(o, "content", None) for o in outcomes)
