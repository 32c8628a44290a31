"""The steps of `make bench` (bench/suite.py): one :class:`Bench` method per measured section, each running the
pipeline pieces (bench/runs.py) against a :class:`Source` and appending what it found to the results."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.plan import Plan, Results
from bench.runs import (
    BenchError,
    Outcome,
    TapSettings,
    TargetSettings,
    check_load,
    dbt_build,
    direct_run,
    meltano_run,
    plain_loop_run,
    tap_config,
    target_config,
)
from invoiz_ops.pipeline import (
    VERBOSE_TARGET,
    Pipeline,
    drop_database,
    private_run_dirs,
    recreate_database,
)
from invoiz_sandbox import Sandbox

ACCOUNT = "bench"
DATABASE = "bench_load"


def say(message: str) -> None:
    print(message, flush=True)


# -- the benchmark --------------------------------------------------------------------------------------------------


@dataclass
class Source:
    """A running sandbox and how many rows a complete load of it has per table."""

    sandbox: Sandbox
    invoices: int
    expected: dict[str, int]

    @classmethod
    def of(cls, sandbox: Sandbox, invoices: int) -> Source:
        stats = sandbox.stats()
        return cls(sandbox, invoices, {"invoices": stats["invoices"], "contacts": stats["contacts"]})


class Bench:
    def __init__(self, plan: Plan, pg_env: dict[str, str], results: Results) -> None:
        self.plan = plan
        self.pg_env = pg_env
        self.results = results
        self.scratch = Path(tempfile.mkdtemp(prefix="tap-invoiz-bench-"))
        # own .meltano/run and dbt target: runs elsewhere in this checkout (tests) must not overwrite our files
        self.run_dirs = private_run_dirs(self.scratch)

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        drop_database(self.pg_env, DATABASE)

    def _fresh_dir(self, name: str) -> Path:
        path = self.scratch / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def pipeline(self, source: Source, tap: TapSettings, target: TargetSettings = TargetSettings()) -> Pipeline:
        """A fresh database and a fresh Meltano system database (state), tap and target settings via env."""
        recreate_database(self.pg_env, DATABASE)
        batch_root = self._fresh_dir("batch")
        sandbox = source.sandbox
        return Pipeline(
            pg_env=self.pg_env,
            database=DATABASE,
            api_url=sandbox.api_url,
            app_url=sandbox.app_url,
            credentials=dict(sandbox.credentials),
            account=ACCOUNT,
            state_dir=self._fresh_dir("state"),
            extra_env={**tap.meltano_env(batch_root), **target.meltano_env(), **self.run_dirs, **VERBOSE_TARGET},
        )  # the target's reader summary counts what it received

    @staticmethod
    def once_more_on_failure(run: Callable[[], Outcome]) -> Outcome:
        """A second try after a failed run: in a shared checkout the tap may be mid-edit (it is installed editable)."""
        try:
            return run()
        except BenchError as exc:
            say(f"  a run failed, trying once more: {str(exc).splitlines()[0]}")
            return run()

    def meltano(self, source: Source, pipe: Pipeline, *, full_refresh: bool) -> Outcome:
        outcome = self.once_more_on_failure(lambda: meltano_run(pipe, source.sandbox, full_refresh=full_refresh))
        if full_refresh:
            outcome.problems, outcome.content = check_load(self.pg_env, DATABASE, source.expected)
        return outcome

    def direct(self, source: Source, tap: TapSettings, target: TargetSettings | None = TargetSettings()) -> Outcome:
        """The plugin executables without Meltano: tap | target into a fresh database, or the tap alone."""
        sandbox = source.sandbox
        batch_root = self._fresh_dir("batch")
        tap_cfg = tap_config(sandbox.api_url, sandbox.app_url, dict(sandbox.credentials), ACCOUNT, tap, batch_root)
        if target is None:
            return self.once_more_on_failure(lambda: direct_run(sandbox, tap_cfg, None))

        def load() -> Outcome:
            recreate_database(self.pg_env, DATABASE)
            return direct_run(sandbox, tap_cfg, target_config(self.pg_env, DATABASE, target))

        outcome = self.once_more_on_failure(load)
        outcome.problems, outcome.content = check_load(self.pg_env, DATABASE, source.expected)
        return outcome

    # 1 + 4, then 6 on the loaded database -----------------------------------------------------------------------------
    def backfill_and_incremental(self, source: Source) -> None:
        plan, results = self.plan, self.results
        source.sandbox.set_latency(plan.latency_ms)
        for run in range(plan.runs):
            pipe = self.pipeline(source, results.defaults)
            backfill = self.meltano(source, pipe, full_refresh=True)
            incremental = self.meltano(source, pipe, full_refresh=False)
            results.backfills.append(backfill)
            results.incrementals.append(incremental)
            say(
                f"  run {run + 1}: backfill {backfill.seconds:.1f} s, {backfill.requests} requests, "
                f"{backfill.peak_concurrency} in flight; no-change run {incremental.seconds:.1f} s, "
                f"{incremental.requests} requests, {incremental.emitted} records emitted"
                + (f"; problems: {backfill.problems}" if backfill.problems else "")
            )
        self.dbt_runs(source.invoices)

    def dbt_runs(self, invoices: int) -> None:
        times = self.results.dbt.setdefault(invoices, [])
        for _ in range(self.plan.runs):
            seconds, summary = dbt_build(self.pg_env, DATABASE)
            times.append(seconds)
            self.results.dbt_summary[invoices] = summary
        say(
            f"  dbt build at {invoices:,} invoices: "
            + ", ".join(f"{s:.1f} s" for s in times)
            + f" ({self.results.dbt_summary[invoices]})"
        )

    # 2 ----------------------------------------------------------------------------------------------------------------
    def tap_vs_loop(self, source: Source) -> None:
        source.sandbox.set_latency(0)
        # The same pages one after another on both sides: max_concurrency 1, the project's page_size.
        tap = TapSettings(page_size=self.results.defaults.page_size, max_concurrency=1)
        for run in range(self.plan.runs):  # interleaved, so both sides see the same background noise
            tap_outcome = self.direct(source, tap, target=None)
            loop_outcome = plain_loop_run(source.sandbox, tap.page_size)
            self.results.taps.append(tap_outcome)
            self.results.loops.append(loop_outcome)
            say(
                f"  run {run + 1}: tap {tap_outcome.emitted or 0:,} rows in {tap_outcome.seconds:.1f} s, "
                f"loop {loop_outcome.rows or 0:,} rows in {loop_outcome.seconds:.1f} s"
            )

    # 1b ---------------------------------------------------------------------------------------------------------------
    def wide_backfill(self, source: Source) -> None:
        """Backfills at the highest concurrency, 100 ms per request: the tap alone and tap | target-postgres, run
        directly (no Meltano start-up), against the latency floor."""
        source.sandbox.set_latency(self.plan.latency_ms)
        tap = TapSettings(page_size=self.results.defaults.page_size, max_concurrency=self.plan.wide_concurrency)
        for run in range(self.plan.runs):  # interleaved, for the same reason as in 2
            alone = self.direct(source, tap, target=None)
            loaded = self.direct(source, tap)
            self.results.wide_taps.append(alone)
            self.results.wide_loads.append(loaded)
            say(
                f"  run {run + 1}: tap alone {alone.seconds:.1f} s, tap | target-postgres {loaded.seconds:.1f} s; "
                f"{alone.requests} requests, {alone.peak_concurrency} in flight"
                + (f"; problems: {loaded.problems}" if loaded.problems else "")
            )

    # 3 ----------------------------------------------------------------------------------------------------------------
    def load_rates(self, source: Source) -> None:
        source.sandbox.set_latency(0)
        defaults = self.results.defaults
        for run in range(self.plan.runs):  # variants interleaved within each round, for the same reason
            for variant in self.plan.load_variants:
                tap = TapSettings(defaults.page_size, defaults.max_concurrency, batch=variant.batch)
                outcome = self.meltano(source, self.pipeline(source, tap, variant.target), full_refresh=True)
                self.results.loads.setdefault(variant.name, []).append(outcome)
                say(
                    f"  run {run + 1}, {variant.name}: {outcome.seconds:.1f} s"
                    + (f"; problems: {outcome.problems}" if outcome.problems else "")
                )

    # 5, then 6 at the small size ----------------------------------------------------------------------------------------
    def memory(self, source: Source, *, then_dbt: bool) -> None:
        source.sandbox.set_latency(0)
        outcomes = self.results.memory.setdefault(source.invoices, [])
        for _ in range(self.plan.runs):
            outcomes.append(self.direct(source, self.results.defaults))
        say(
            f"  {source.invoices:,} invoices: tap peak RSS "
            + ", ".join(f"{o.tap_rss_mb:.0f}" for o in outcomes)
            + " MB; target "
            + ", ".join(f"{o.target_rss_mb:.0f}" for o in outcomes)
            + " MB"
            + (f"; problems: {outcomes[-1].problems}" if outcomes[-1].problems else "")
        )
        if then_dbt:
            self.dbt_runs(source.invoices)

    # grid -------------------------------------------------------------------------------------------------------------
    def grid(self, source: Source) -> None:
        source.sandbox.set_latency(self.plan.latency_ms)
        # BATCH changes how the target loads, not how the tap pages: one page size is enough to see it.
        cells = [TapSettings(p, c) for p in self.plan.page_sizes for c in self.plan.concurrencies]
        cells += [TapSettings(max(self.plan.page_sizes), c, batch=True) for c in self.plan.concurrencies]
        for settings in cells:
            outcomes = self.results.grid.setdefault(settings, [])
            for _ in range(self.plan.grid_runs):
                outcomes.append(self.direct(source, settings))
            say(
                f"  {settings.label()}: "
                + ", ".join(f"{o.seconds:.1f} s" for o in outcomes)
                + f", {outcomes[-1].peak_concurrency} in flight"
                + (f"; problems: {outcomes[-1].problems}" if outcomes[-1].problems else "")
            )
