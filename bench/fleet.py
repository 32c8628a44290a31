"""Fleet benchmark: one `meltano run` per account against shards (several accounts per tap process), side by side.

    .venv/bin/python -m bench.fleet                    # 200 accounts in shards, 20 of them one run each
    .venv/bin/python -m bench.fleet --accounts 40 --baseline-accounts 10 --scale 0.2 --output -   # quick

Both modes run the same Dagster job through its CLI (multiprocess executor, PostgreSQL storage, Meltano state in a
PostgreSQL system database) against one multi-tenant sandbox, with their own databases, in one run:

1. backfill: the first cycle of every account (sizes from the sandbox's distribution, times ``--scale``);
2. incremental: after a few changes in every account (one invoice paid, one new invoice, one contact edited);
3. no change: the next cycle with nothing new.

Per cycle and mode: wall time, CPU-seconds per account (every process the cycle started: Dagster, Meltano, the tap,
the target, dbt; not PostgreSQL and not the sandbox), of which the loads (per account), and invoiz requests per
account. One run per account is measured on the first ``--baseline-accounts`` accounts only (it costs ≈ 6.5 CPU-s per
account per cycle); shards run all ``--accounts``. The marts' `dbt build` runs once per cycle in both modes and is
shown on its own line. Writes the "Fleet" section of docs/BENCHMARKS.md (kept when `make bench` rewrites the rest).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import machine as bench_machine
from invoiz_ops import embedded_db
from invoiz_ops.fleet.deploy import Fleet, credentials_env
from invoiz_ops.pipeline import (
    PROJECT_ROOT,
    database_server,
    drop_database,
    load_dotenv_database_settings,
    project_copy,
)

DOC_PATH = PROJECT_ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- fleet-benchmark -->", "<!-- /fleet-benchmark -->"
CYCLES = ("backfill", "incremental", "no change")


def keep_fleet_section(path: Path, report: str) -> str:
    """`make bench` rewrites docs/BENCHMARKS.md: the fleet section (written by this benchmark) is carried over."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in old and END in old and BEGIN not in report:
        return report.rstrip("\n") + "\n\n" + old[old.index(BEGIN) : old.index(END) + len(END)] + "\n"
    return report


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CycleResult:
    mode: str
    cycle: str
    accounts: int
    wall: float
    cpu: float
    load_cpu: float
    marts_cpu: float
    requests: int
    records: int
    status: str
    failed_steps: list[str] = field(default_factory=list)

    def row(self) -> str:
        n = self.accounts
        return (
            f"| {self.cycle} | {self.mode} | {n} | {self.wall:.0f} s | {self.cpu / n:.2f} | {self.load_cpu / n:.2f} "
            f"| {self.marts_cpu:.1f} | {self.requests / n:.1f} | {self.records:,} | {self.status} |"
        )


def load_cpu_of_run(fleet: Fleet) -> tuple[float, float, int]:
    """(CPU-s of the load steps, CPU-s of the marts, records emitted) from the latest run's materializations."""
    loads = marts = 0.0
    records = 0
    shards_seen = set()
    for key, meta in fleet.materializations():
        if key == "marts":
            marts += float(meta.get("cpu_seconds") or 0)
            continue
        records += int(meta.get("records") or 0)
        if "shard" in meta:
            if meta["shard"] not in shards_seen:
                shards_seen.add(meta["shard"])
                loads += float(meta.get("shard_cpu_seconds") or 0)
        else:
            loads += float(meta.get("cpu_seconds") or 0)
    return loads, marts, records


def change_every_account(sandbox, installations: list[str]) -> None:
    """A few changes per account: one locked invoice paid, one new invoice, one contact's phone number."""
    for iid in installations:
        sb = sandbox.installation(iid)
        open_ids = [i for i in sb.invoice_ids()[-50:] if sb.invoice_row(i)["state"] in ("locked", "partiallyPaid")]
        if open_ids:
            sb.pay(open_ids[0])
        sb.create_invoice()
        sb.update_contact(sb.contact_ids()[0], phone1="+49 30 1234567")


def run(args: argparse.Namespace) -> str:
    from invoiz_sandbox import FleetSandbox

    load_dotenv_database_settings()
    pg_env, started = database_server()
    folder = Path(tempfile.mkdtemp(prefix="invoiz-fleet-bench-"))
    names = [f"acct-{i:03d}" for i in range(1, args.accounts + 1)]
    modes = {
        "one run per account": (names[: args.baseline_accounts], 0),
        f"shards ({args.shards})": (names, args.shards),
    }
    results: list[CycleResult] = []
    fleets: list[Fleet] = []
    try:
        with FleetSandbox(installations=len(names), seed=args.seed, scale=args.scale, today="2026-11-01") as sandbox:
            ids = sandbox.installation_ids
            sizes = [sandbox.size(i) for i in ids]
            print(
                f"{len(names)} accounts, {sum(sizes):,} invoices (smallest {min(sizes):,}, median "
                f"{sorted(sizes)[len(sizes) // 2]:,}, largest {max(sizes):,})",
                flush=True,
            )
            by_mode = {}
            for index, (mode, (members, shards)) in enumerate(modes.items()):
                suffix = uuid.uuid4().hex[:8]
                project = project_copy(folder / f"mode{index}", fleet=members)
                fleet = Fleet(
                    project=project,
                    pg_env=pg_env,
                    warehouse=f"fleet_bench_{suffix}",
                    system_db=f"fleet_bench_{suffix}_meltano",
                    dagster_db=f"fleet_bench_{suffix}_dagster",
                    dagster_home=folder / f"mode{index}" / "dagster-home",
                    max_concurrent=args.max_concurrent,
                    shards=shards,
                    inherit_settings=False,
                    extra_env={
                        "TAP_INVOIZ_API_URL": sandbox.api_url,
                        "TAP_INVOIZ_APP_URL": sandbox.app_url,
                        **credentials_env(sandbox, members, ids[: len(members)]),
                    },
                )
                fleet.deploy()
                fleets.append(fleet)
                by_mode[mode] = (fleet, members)
            for cycle in CYCLES:
                if cycle == "incremental":
                    change_every_account(sandbox, ids)
                for mode, (fleet, members) in by_mode.items():
                    for sb in sandbox.installations.values():
                        sb.reset_counters()
                    cpu0, t0 = _children_cpu(), time.monotonic()
                    fleet.cycle(timeout=6 * 3600)
                    wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
                    status, steps = fleet.last_run_steps()
                    loads, marts, records = load_cpu_of_run(fleet)
                    requests = sum(
                        sum(v for k, v in sb.requests.items() if k not in ("admin", "other"))
                        for sb in sandbox.installations.values()
                    )
                    result = CycleResult(
                        mode,
                        cycle,
                        len(members),
                        wall,
                        cpu,
                        loads,
                        marts,
                        requests,
                        records,
                        status,
                        [k for k, v in steps.items() if v != "STEP_SUCCESS"],
                    )
                    results.append(result)
                    print(result.row(), flush=True)
            machine = bench_machine.describe(pg_env, "your own (PG*)" if not started else "embedded")
    finally:
        for fleet in fleets:
            for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
                drop_database(pg_env, db)
        shutil.rmtree(folder, ignore_errors=True)
        if started:
            embedded_db.stop()
    return render(args, results, machine)


def render(args: argparse.Namespace, results: list[CycleResult], machine: dict) -> str:
    def find(mode_prefix: str, cycle: str) -> CycleResult | None:
        return next((r for r in results if r.mode.startswith(mode_prefix) and r.cycle == cycle), None)

    lines = [
        BEGIN,
        "## Fleet: one `meltano run` per account against shards (`make bench-fleet`)",
        "",
        f"`python -m bench.fleet --accounts {args.accounts} --baseline-accounts {args.baseline_accounts} "
        f"--shards {args.shards} --max-concurrent {args.max_concurrent} --scale {args.scale}`, one run, both "
        "modes side by side, each through `dagster job execute` (multiprocess executor) against the "
        "multi-tenant sandbox. CPU = every process a cycle started (Dagster, Meltano, tap, target, dbt), not "
        "PostgreSQL or the sandbox. Per account = divided by the accounts of that mode.",
        "",
        "| cycle | mode | accounts | wall | CPU-s / account | of which loads | dbt build CPU-s | requests / account "
        "| records | run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [r.row() for r in results]
    lines.append("")
    for cycle in CYCLES:
        base, shard = find("one run", cycle), find("shards", cycle)
        if base and shard:
            lines.append(
                f"- {cycle}: {base.cpu / base.accounts:.2f} → {shard.cpu / shard.accounts:.2f} CPU-s per "
                f"account ({base.cpu / base.accounts / max(shard.cpu / shard.accounts, 1e-9):.1f}× less); "
                f"loads alone {base.load_cpu / base.accounts:.2f} → {shard.load_cpu / shard.accounts:.2f}."
            )
    no_change = find("shards", "no change")
    if no_change:
        verdict = "meets" if no_change.cpu / no_change.accounts <= 1.0 else "misses"
        lines.append(
            f"- Target ≤ 1 CPU-s per account for a cycle without changes: shards {verdict} it "
            f"({no_change.cpu / no_change.accounts:.2f}, Dagster and the marts included)."
        )
    lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()), END]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + section.rstrip("\n") + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip("\n") + "\n\n" + section
    path.write_text(new if new.endswith("\n") else new + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument(
        "--baseline-accounts", type=int, default=20, help="accounts measured with one `meltano run` each (the first N)"
    )
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the sandbox's account sizes")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", default=str(DOC_PATH), help="file whose fleet section is written; - = print only")
    args = parser.parse_args(argv)
    section = run(args)
    print("\n" + section)
    if args.output != "-":
        write_section(Path(args.output), section)
        print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
