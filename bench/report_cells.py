"""The benchmark report's figures: targets, medians, ratios, and how a figure is written in a table cell."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable

from bench.runs import Outcome

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


def latency_floor(outcome: Outcome, latency_ms: float) -> float:
    """The latency floor: requests × latency ÷ the concurrency the tap really used (at least 1)."""
    return outcome.requests * latency_ms / 1000 / max(1, outcome.peak_concurrency)


def ratio_of(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def seconds_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def ratio_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def count_text(value: float | None) -> str:
    return "–" if value is None else f"{round(value):,}"


def mb_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} MB"


def load_problems(outcomes: list[Outcome], reference: str | None = None) -> list[str]:
    """Problems of these runs; with a reference fingerprint, also whether they loaded other values than it."""
    seen: list[str] = []
    for outcome in outcomes:
        seen += [p for p in outcome.problems if p not in seen]
        content = getattr(outcome, "content", None)
        differs = "values differ from the reference load"
        if reference and content and content != reference and differs not in seen:
            seen.append(differs)
    return seen


def loaded_text(outcomes: list[Outcome], reference: str | None = None) -> str:
    problems = load_problems(outcomes, reference)
    return "ok" if not problems else "; ".join(problems)


def reference_content(outcomes: list[Outcome]) -> str | None:
    return next((o.content for o in outcomes if getattr(o, "content", None)), None)
