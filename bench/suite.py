"""`make bench`: how fast and how lean the pipeline is, measured against the invoiz sandbox and a real PostgreSQL.

    .venv/bin/python -m bench.suite            # full: 100k and 10k invoices, medians of 3 runs; writes docs/BENCHMARKS.md
    .venv/bin/python -m bench.suite --quick    # small numbers, 1 run, prints only (for development)
    .venv/bin/python -m bench.suite --only tap [--quick]   # only 2 and 1b, the tap's throughput; prints only

Measured side by side (targets in TARGETS):
1. backfill (`meltano run --full-refresh tap-invoiz target-postgres`) ÷ the latency floor, 100 ms per request;
1b. backfill at max_concurrency 8 (60,000 invoices, 100 ms) ÷ its latency floor: the tap alone and tap | target;
2. the tap's rows/s without latency ÷ a plain requests + json loop over the same pages;
3. end-to-end load rate into PostgreSQL through `meltano run`, default vs BATCH vs target-postgres settings;
4. a no-change incremental run ÷ the backfill (time, requests; it must emit 0 records);
5. peak RSS of the tap and target processes at 10k vs 100k invoices (plugin executables run directly, os.wait4);
6. `dbt build` at 10k and 100k;
plus a grid of page_size × max_concurrency × BATCH at 100 ms to choose defaults.

PostgreSQL: yours when PGHOST is set, else the embedded one (started if needed, stopped only if started here).
Everything runs in databases named bench_* (dropped at the end) with a temporary Meltano system database per run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench import machine as bench_machine
from bench.plan import Plan, Results
from bench.report import render
from bench.runs import (
    TAP_EXE,
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
from invoiz_ops import embedded_db
from invoiz_ops.pipeline import (
    PROJECT_ROOT,
    VERBOSE_TARGET,
    Pipeline,
    database_server,
    drop_database,
    private_run_dirs,
    recreate_database,
)
from invoiz_sandbox import Sandbox

SEED = 42
TODAY = "2026-11-01"  # the sandbox clock: same data on every machine
ACCOUNT = "bench"
DATABASE = "bench_load"
DOC_PATH = PROJECT_ROOT / "docs" / "BENCHMARKS.md"


# -- small helpers ------------------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(message, flush=True)


def project_tap_defaults() -> TapSettings:
    """page_size and max_concurrency as meltano.yml sets them for tap-invoiz (what users run)."""
    project = yaml.safe_load((PROJECT_ROOT / "meltano.yml").read_text(encoding="utf-8"))
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-invoiz")
    values = {s["name"]: s.get("value") for s in tap.get("settings", [])}
    return TapSettings(
        page_size=int(values.get("page_size") or 100), max_concurrency=int(values.get("max_concurrency") or 1)
    )


def tap_declares_concurrency() -> bool:
    """Whether the installed tap knows the max_concurrency setting (else it fetches pages one after another)."""
    about = subprocess.run([str(TAP_EXE), "--about", "--format=json"], capture_output=True, text=True, check=False)
    try:
        return "max_concurrency" in json.loads(about.stdout)["settings"]["properties"]
    except (ValueError, KeyError, TypeError):
        return False


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


def run_bench(plan: Plan) -> Results:
    started = time.monotonic()
    pg_env, started_db = database_server()
    database_kind = "yours, from PG* variables" if os.environ.get("PGHOST") else "embedded"
    results = Results(
        plan=plan,
        defaults=project_tap_defaults(),
        declares_concurrency=tap_declares_concurrency(),
        started_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    results.machine = bench_machine.describe(pg_env, database_kind)
    say(f"PostgreSQL: {database_kind} at {pg_env['PGHOST']}:{pg_env['PGPORT']}; work database {DATABASE}")
    say(
        f"meltano.yml tap defaults: {results.defaults.label()}; the tap "
        + (
            "declares max_concurrency"
            if results.declares_concurrency
            else "does not declare max_concurrency (it fetches pages one after another)"
        )
    )
    bench = Bench(plan, pg_env, results)

    def phase(title: str) -> None:
        say(f"[{time.monotonic() - started:5.0f} s] {title} (load average {bench_machine.load_average()})")

    def measured(key: str, step: Callable[[], None]) -> None:
        """Run one section, keeping the machine's load average before and after it (the report shows both)."""
        before = bench_machine.load_average()
        step()
        results.load_averages[key] = (before, bench_machine.load_average())

    try:
        with Sandbox(seed=SEED, invoices=plan.big, today=TODAY) as sandbox:
            big = Source.of(sandbox, plan.big)
            if not plan.only_tap:
                phase(f"1+4+6: backfill and no-change run, {plan.big:,} invoices, {plan.latency_ms:g} ms per request")
                bench.backfill_and_incremental(big)
            phase(f"2: tap vs plain loop, {plan.big:,} invoices, no latency")
            measured("2", lambda: bench.tap_vs_loop(big))
            if not plan.only_tap:
                phase(f"3: load rates through meltano run, {plan.big:,} invoices, no latency")
                bench.load_rates(big)
                phase(f"5: peak RSS, {plan.big:,} invoices")
                bench.memory(big, then_dbt=False)
        with Sandbox(seed=SEED, invoices=plan.wide_invoices, today=TODAY) as sandbox:
            wide = Source.of(sandbox, plan.wide_invoices)
            phase(
                f"1b: backfill at max_concurrency {plan.wide_concurrency}, {plan.wide_invoices:,} invoices, "
                f"{plan.latency_ms:g} ms per request"
            )
            measured("1b", lambda: bench.wide_backfill(wide))
        if plan.only_tap:
            return results
        with Sandbox(seed=SEED, invoices=plan.small, today=TODAY) as sandbox:
            small = Source.of(sandbox, plan.small)
            phase(f"5+6: peak RSS and dbt build, {plan.small:,} invoices")
            bench.memory(small, then_dbt=True)
            phase(
                f"grid: page_size × max_concurrency × BATCH, {plan.small:,} invoices, {plan.latency_ms:g} ms per request"
            )
            bench.grid(small)
    finally:
        bench.close()
        if started_db:
            embedded_db.stop()
        results.seconds_total = time.monotonic() - started
        say(f"[{results.seconds_total:5.0f} s] done")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k/2k invoices, 1 run, small grid; prints only")
    parser.add_argument("--runs", type=int, help="runs per figure (median); default 3, --quick 1")
    parser.add_argument(
        "--only",
        choices=["tap"],
        help="tap: only the tap's throughput (2: tap vs plain loop, 1b: backfill at max_concurrency 8); prints only "
        "unless --output is given",
    )
    parser.add_argument("--save", type=Path, help="also pickle the raw results here (to re-render the report)")
    parser.add_argument("--render", type=Path, metavar="SAVED", help="only render the report from --save'd results")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"write the report here (default: {DOC_PATH.relative_to(PROJECT_ROOT)} "
        "for a full run, nothing for --quick)",
    )
    args = parser.parse_args(argv)
    plan = Plan.quick_plan() if args.quick else Plan.full()
    if args.runs:
        plan.runs = args.runs
    plan.only_tap = args.only == "tap"
    if args.render:
        results = pickle.loads(args.render.read_bytes())
        plan = results.plan
    else:
        try:
            results = run_bench(plan)
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        if args.save:
            args.save.write_bytes(pickle.dumps(results))
    report = render(results)
    say("\n" + report)
    output = args.output or (None if plan.quick or plan.only_tap else DOC_PATH)
    if output:
        from bench.fleet import keep_fleet_section

        output.write_text(keep_fleet_section(output, report), encoding="utf-8")
        say(f"\nwritten to {output}")
        from bench import marts

        marts.main(["--output", str(output)])  # its own section: 1,000,000 invoices, incremental vs full rebuild
    return 0


if __name__ == "__main__":
    sys.exit(main())
