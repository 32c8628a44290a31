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
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from bench import machine as bench_machine
from bench.plan import Plan, Results
from bench.report import render
from bench.runs import (
    TAP_EXE,
    BenchError,
    TapSettings,
)
from bench.steps import DATABASE, Bench, Source, say
from invoiz_ops import embedded_db
from invoiz_ops.pipeline import (
    PROJECT_ROOT,
    database_server,
)
from invoiz_sandbox import Sandbox

SEED = 42
TODAY = "2026-11-01"  # the sandbox clock: same data on every machine
DOC_PATH = PROJECT_ROOT / "docs" / "BENCHMARKS.md"


# -- small helpers ------------------------------------------------------------------------------------------------


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
            embedded_db.release()
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
