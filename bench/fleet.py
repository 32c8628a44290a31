"""Fleet benchmark: one `meltano run` per account, shards on one machine, shards on two Celery workers, side by side.

    make bench-fleet    # = python -m bench.fleet --accounts 1000 --shards 2 --scale 0.25 --baseline-accounts 0 --workers 2
    .venv/bin/python -m bench.fleet --accounts 40 --baseline-accounts 10 --scale 0.2 --output -   # quick

Both modes run the same Dagster job through its CLI (multiprocess executor, PostgreSQL storage, Meltano state in a
PostgreSQL system database) against one multi-tenant sandbox, with their own databases, in one run:

1. backfill: the first cycle of every account (sizes from the sandbox's distribution, times ``--scale``);
2. incremental: after a few changes in every account (one invoice paid, one new invoice, one contact edited);
3. no change: the next cycle with nothing new.

Per cycle and mode: wall time, CPU-seconds per account of every process the cycle started (Dagster, Meltano, the
tap, the target, dbt) and of the Celery workers, of which the loads; PostgreSQL's own CPU (the server's process tree,
sampled from /proc beside the cycle: the postmaster with the backends it reaped and the live ones) and the broker's;
the sum of both ("all included"); invoiz requests per account. The sandbox is not counted. One run per account is measured on the first ``--baseline-accounts`` accounts only (it costs ≈ 6.5 CPU-s per
account per cycle); shards run all ``--accounts``. The marts' `dbt build` runs once per cycle in both modes and is
shown on its own line. Writes the "Fleet" section of docs/BENCHMARKS.md (kept when `make bench` rewrites the rest).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import machine as bench_machine
from bench.process_cpu import become_subreaper, children, children_cpu, proc_stat, reap_orphans, tree_cpu
from invoiz_ops import embedded_db
from invoiz_ops.fleet.deploy import DAGSTER_VENV, Fleet, credentials_env
from invoiz_ops.pipeline import (
    PROJECT_ROOT,
    connect,
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


def postgres_pid(pg_env: dict) -> int | None:
    """The PostgreSQL server's postmaster, when it runs on this machine: the parent of our own backend."""
    with connect(pg_env) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    stat = proc_stat(backend)
    return stat[0] if stat else None


def broker_pid(folder: Path) -> int | None:
    try:
        return int((folder / "valkey.pid").read_text().strip())
    except (OSError, ValueError):
        return None


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
    postgres_cpu: float = 0.0  # the server's process tree, with the broker's
    workers: dict[str, int] = field(default_factory=dict)  # Celery mode: steps per worker

    @property
    def total(self) -> float:
        return self.cpu + self.postgres_cpu

    def row(self) -> str:
        n = self.accounts
        return (
            f"| {self.cycle} | {self.mode} | {n} | {self.wall:.0f} s | {self.cpu / n:.3f} | {self.load_cpu / n:.3f} "
            f"| {self.marts_cpu:.1f} | {self.postgres_cpu / n:.3f} | **{self.total / n:.3f}** "
            f"| {self.requests / n:.1f} | {self.records:,} | {self.status} |"
        )


def load_cpu_of_run(fleet: Fleet) -> tuple[float, float, int, dict[str, int]]:
    """(CPU-s of the load steps, CPU-s of the marts, records emitted, {worker: steps}) from the latest run's
    materializations."""
    loads = marts = 0.0
    records = 0
    shards_seen = set()
    workers: dict[str, int] = {}
    for key, meta in fleet.materializations():
        if meta.get("worker") and (key == "marts" or meta.get("shard") not in shards_seen):
            workers[meta["worker"]] = workers.get(meta["worker"], 0) + 1
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
    return loads, marts, records, workers


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
    modes = {}  # mode: (accounts, shards, Celery workers)
    if args.baseline_accounts:
        modes["one run per account"] = (names[: args.baseline_accounts], 0, 0)
    modes[f"shards ({args.shards})"] = (names, args.shards, 0)
    if args.workers:
        modes[f"shards ({args.shards}), {args.workers} Celery workers"] = (names, args.shards, args.workers)
    results: list[CycleResult] = []
    fleets: list[Fleet] = []
    workers: list[subprocess.Popen] = []
    broker_folder = folder / "broker"
    postmaster = postgres_pid(pg_env)
    try:
        with FleetSandbox(installations=len(names), seed=args.seed, scale=args.scale, today="2026-11-01") as sandbox:
            ids = sandbox.installation_ids
            sizes = [sandbox.size(i) for i in ids]
            print(
                f"{len(names)} accounts, {sum(sizes):,} invoices (smallest {min(sizes):,}, median "
                f"{sorted(sizes)[len(sizes) // 2]:,}, largest {max(sizes):,}); PostgreSQL "
                + (f"pid {postmaster}" if postmaster else "not on this machine: its CPU is not counted"),
                flush=True,
            )
            by_mode = {}
            for index, (mode, (members, shards, worker_count)) in enumerate(modes.items()):
                suffix = uuid.uuid4().hex[:8]
                common = {
                    "pg_env": pg_env,
                    "warehouse": f"fleet_bench_{suffix}",
                    "system_db": f"fleet_bench_{suffix}_meltano",
                    "dagster_db": f"fleet_bench_{suffix}_dagster",
                    "max_concurrent": args.max_concurrent,
                    "shards": shards,
                    "inherit_settings": False,
                    "executor": "celery" if worker_count else "multiprocess",
                    "extra_env": {
                        "TAP_INVOIZ_API_URL": sandbox.api_url,
                        "TAP_INVOIZ_APP_URL": sandbox.app_url,
                        **credentials_env(sandbox, members, ids[: len(members)]),
                    },
                }
                # Celery: each worker runs from its own copy of the project (own folders), like another machine
                copies = [f"mode{index}"] + [f"mode{index}-worker{k}" for k in range(2, worker_count + 1)]
                fleet_copies = [
                    Fleet(
                        project=project_copy(folder / name, fleet=members),
                        dagster_home=folder / name / "dagster-home",
                        work_dir=folder / name / "steps",
                        **common,
                    )
                    for name in copies
                ]
                fleet = fleet_copies[0]
                if worker_count:
                    url = fleet.start_broker(broker_folder, args.broker_port)
                    for copy in fleet_copies:
                        copy.broker_url = url
                fleet.deploy()
                for number, copy in enumerate(fleet_copies[:worker_count], 1):
                    # the same steps at once in total as one machine with --max-concurrent
                    concurrency = max(1, args.max_concurrent // worker_count)
                    workers.append(copy.start_worker(f"worker{number}", concurrency=concurrency))
                fleets.append(fleet)
                by_mode[mode] = (fleet, members, workers[-worker_count:] if worker_count else [])
            become_subreaper()
            for cycle in CYCLES:
                if cycle == "incremental":
                    change_every_account(sandbox, ids)
                for mode, (fleet, members, mode_workers) in by_mode.items():
                    for sb in sandbox.installations.values():
                        sb.reset_counters()
                    servers = [postmaster, broker_pid(broker_folder) if mode_workers else None]
                    outside0 = sum(tree_cpu(p) for p in servers)
                    workers0 = sum(tree_cpu(w.pid) for w in mode_workers)
                    own_children = children()
                    cpu0, t0 = children_cpu(), time.monotonic()
                    fleet.cycle(timeout=6 * 3600)
                    wall = time.monotonic() - t0
                    reap_orphans(own_children)
                    cpu = children_cpu() - cpu0 + sum(tree_cpu(w.pid) for w in mode_workers) - workers0
                    outside = sum(tree_cpu(p) for p in servers) - outside0
                    status, steps = fleet.last_run_steps()
                    loads, marts, records, ran_on = load_cpu_of_run(fleet)
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
                        postgres_cpu=outside,
                        workers=ran_on if mode_workers else {},
                    )
                    results.append(result)
                    print(result.row() + (f" steps per worker: {ran_on}" if mode_workers else ""), flush=True)
            machine = bench_machine.describe(pg_env, "your own (PG*)" if not started else "embedded")
    finally:
        for proc in workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
        if broker_pid(broker_folder):
            subprocess.run(
                [str(DAGSTER_VENV / "bin" / "python"), "-m", "invoiz_ops.fleet.broker", "stop"]
                + ["--dir", str(broker_folder)],
                check=False,
            )
        for fleet in fleets:
            for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
                drop_database(pg_env, db)
        shutil.rmtree(folder, ignore_errors=True)
        if started:
            embedded_db.release()
    return render(args, results, machine)


def render(args: argparse.Namespace, results: list[CycleResult], machine: dict) -> str:
    def find(mode_prefix: str, cycle: str) -> CycleResult | None:
        return next((r for r in results if r.mode.startswith(mode_prefix) and r.cycle == cycle), None)

    lines = [
        BEGIN,
        "## Fleet: one `meltano run` per account, shards, shards on two workers (`make bench-fleet`)",
        "",
        f"`python -m bench.fleet --accounts {args.accounts} --baseline-accounts {args.baseline_accounts} "
        f"--shards {args.shards} --max-concurrent {args.max_concurrent} --scale {args.scale} --workers "
        f"{args.workers}`, one run, the modes side by side, each through `dagster job execute` against the "
        "multi-tenant sandbox (multiprocess executor; the workers' mode: Dagster's celery executor, each worker from "
        "its own copy of the project, an embedded valkey broker). CPU = every process a cycle started (Dagster, "
        "Meltano, tap, target, dbt) and the Celery workers; PostgreSQL = the server's process tree and the broker, "
        "sampled from /proc beside the cycle; all included = both. Per account = divided by the accounts of that "
        "mode. The sandbox is not counted. A cycle in which no raw row changed skips the marts' `dbt build`.",
        "",
        "| cycle | mode | accounts | wall | CPU-s / account | of which loads | dbt build CPU-s | PostgreSQL + broker "
        "CPU-s / account | all included / account | requests / account | records | run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [r.row() for r in results]
    lines.append("")
    for cycle in CYCLES:
        base, shard = find("one run", cycle), find("shards", cycle)
        if base and shard:
            lines.append(
                f"- {cycle}: {base.total / base.accounts:.2f} → {shard.total / shard.accounts:.3f} CPU-s per "
                f"account all included ({base.total / base.accounts / max(shard.total / shard.accounts, 1e-9):.0f}× "
                "less)."
            )
    for result in results:
        if result.workers:
            lines.append(f"- {result.cycle}, {result.mode}: steps per worker {result.workers}.")
    for mode in dict.fromkeys(r.mode for r in results if r.mode.startswith("shards")):
        no_change = find(mode, "no change")
        if no_change:
            per_account = no_change.total / no_change.accounts
            verdict = "meets" if per_account <= 0.1 and no_change.wall < 120 else "misses"
            lines.append(
                f"- Goal for a cycle without changes, ≤ 0.1 CPU-s per account all included and under 2 minutes: "
                f"{mode} {verdict} it ({per_account:.3f} CPU-s, {no_change.wall:.0f} s)."
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
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument(
        "--baseline-accounts",
        type=int,
        default=0,
        help="accounts also measured with one `meltano run` each (the first N; 0: that mode is not run)",
    )
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="also run the shards on N Celery workers (0: not)")
    parser.add_argument("--broker-port", type=int, default=6391)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--scale", type=float, default=0.25, help="multiplies the sandbox's account sizes")
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
