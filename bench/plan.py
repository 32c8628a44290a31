"""What a benchmark run measures (:class:`Plan`) and what it found (:class:`Results`): bench/suite.py fills them,
bench/report.py renders them (neither imports the other)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.runs import Outcome, TapSettings, TargetSettings


@dataclass(frozen=True)
class LoadVariant:
    name: str
    batch: bool = False
    target: TargetSettings = TargetSettings()


FULL_LOAD_VARIANTS = (
    LoadVariant("default (meltano.yml)"),
    LoadVariant("BATCH jsonl + gzip", batch=True),
    LoadVariant("validate_records=false", target=TargetSettings((("validate_records", False),))),
    LoadVariant("use_copy=true", target=TargetSettings((("use_copy", True),))),
    LoadVariant(
        "validate_records=false, use_copy=true, batch_size_rows=50000",
        target=TargetSettings((("validate_records", False), ("use_copy", True), ("batch_size_rows", 50000))),
    ),
)


@dataclass
class Plan:
    quick: bool
    runs: int
    big: int
    small: int
    grid_runs: int
    latency_ms: float
    page_sizes: tuple[int, ...]
    concurrencies: tuple[int, ...]
    load_variants: tuple[LoadVariant, ...]
    # backfill at the highest concurrency against its latency floor (the tap's CPU per row shows here)
    wide_invoices: int = 60_000
    wide_concurrency: int = 8
    only_tap: bool = False  # --only tap: sections 2 and 1b alone

    @classmethod
    def full(cls) -> Plan:
        return cls(
            quick=False,
            runs=3,
            big=100_000,
            small=10_000,
            grid_runs=1,
            latency_ms=100,
            page_sizes=(100, 250, 500),
            concurrencies=(1, 2, 4, 8),
            load_variants=FULL_LOAD_VARIANTS,
        )

    @classmethod
    def quick_plan(cls) -> Plan:
        variants = tuple(
            v
            for v in FULL_LOAD_VARIANTS
            if v.name
            in (
                "default (meltano.yml)",
                "BATCH jsonl + gzip",
                "validate_records=false, use_copy=true, batch_size_rows=50000",
            )
        )
        return cls(
            quick=True,
            runs=1,
            big=10_000,
            small=2_000,
            grid_runs=1,
            latency_ms=100,
            page_sizes=(100, 500),
            concurrencies=(1, 4),
            load_variants=variants,
            wide_invoices=20_000,
        )


@dataclass
class Results:
    plan: Plan
    defaults: TapSettings
    declares_concurrency: bool
    machine: dict[str, str] = field(default_factory=dict)
    backfills: list[Outcome] = field(default_factory=list)
    incrementals: list[Outcome] = field(default_factory=list)
    taps: list[Outcome] = field(default_factory=list)
    loops: list[Outcome] = field(default_factory=list)
    wide_taps: list[Outcome] = field(default_factory=list)  # 1b: tap-invoiz > /dev/null at wide_concurrency
    wide_loads: list[Outcome] = field(default_factory=list)  # 1b: tap-invoiz | target-postgres at wide_concurrency
    load_averages: dict[str, tuple[str, str]] = field(default_factory=dict)  # section → (before, after)
    loads: dict[str, list[Outcome]] = field(default_factory=dict)
    memory: dict[int, list[Outcome]] = field(default_factory=dict)
    dbt: dict[int, list[float]] = field(default_factory=dict)
    dbt_summary: dict[int, str] = field(default_factory=dict)
    grid: dict[TapSettings, list[Outcome]] = field(default_factory=dict)
    seconds_total: float = 0.0
    started_at: str = ""
