"""Marts benchmark: a cycle in which a few accounts changed against a full rebuild of the marts, side by side.

    .venv/bin/python -m bench.marts                      # 1,000 accounts × 1,000 invoices, 30 of them changed
    .venv/bin/python -m bench.marts --accounts 100 --output -    # quick look, prints only

Raw rows are generated directly in PostgreSQL by tests/dbt/fixtures/scale.sql (the tap and the target are not measured here): per account
1,000 invoices, 200 contacts (some e-mail addresses shared across accounts, some without e-mail), a payment per paid
invoice, about 1 % tombstones; each account loaded at its own time. Then, with the dbt that `meltano install` built
(`.meltano/utilities/dbt-postgres/venv/bin/dbt`), in one run:

1. `dbt run --full-refresh` — every model from scratch (what every cycle cost before the marts were incremental);
2. `--changed` accounts change (invoices paid, a new invoice, a deleted contact, newer `_sdc_batched_at`), then
   `dbt run` — the incremental cycle;
3. `dbt run` again without changes;

each followed by `dbt test` (timed on its own: `dbt build` runs both).

The load average is printed before each step: the machine is shared, so the ratio of the steps measured one after
another here is the figure, not the seconds. Writes the "Marts" section of docs/BENCHMARKS.md (kept when
`make bench` rewrites the rest). PostgreSQL: yours when PGHOST is set, else the embedded one; database `bench_marts`,
dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import machine as bench_machine
from invoiz_ops import embedded_db
from invoiz_ops.pipeline import PROJECT_ROOT, connect, database_server, dbt_env, drop_database, recreate_database

DATABASE = "bench_marts"
DOC_PATH = PROJECT_ROOT / "docs" / "BENCHMARKS.md"
HEADING = "## Marts"
DBT = PROJECT_ROOT / ".meltano" / "utilities" / "dbt-postgres" / "venv" / "bin" / "dbt"
FIXTURE = PROJECT_ROOT / "tests" / "dbt" / "fixtures" / "raw_invoiz.sql"
TARGET_RATIO = 0.2  # the changed cycle costs at most 1/5 of a full rebuild
TARGET_SECONDS = 20.0
AS_OF = "2026-11-29"

# Generated raw rows: accounts × invoices and contacts per account (one source with the psql recipe in transform/README.md).
SCALE_SQL = PROJECT_ROOT / "tests" / "dbt" / "fixtures" / "scale.sql"

# Changes in the accounts listed in {changed}: ten open invoices paid, one new invoice, one contact deleted.
CHANGE = """
update raw_invoiz.invoices set status = 'paid', state = 'paid', outstanding_amount = 0, paid_date = date '2026-11-29',
       _sdc_extracted_at = {now}, _sdc_batched_at = {now}
where account in ({changed}) and id in (select id from raw_invoiz.invoices where status = 'open' and account = 'a0001'
                                        order by id limit 10);
insert into raw_invoiz.invoices
    (account, id, number, type, state, status, customer_id, date, total_net, total_gross, outstanding_amount,
     invoice_url, _sdc_extracted_at, _sdc_received_at, _sdc_batched_at)
select account, {invoices} + 1, 'RE-NEU', 'invoice', 'locked', 'open', 1, date '2026-11-29', 100, 119, 119,
       'https://app.invoiz.de/invoice/' || ({invoices} + 1), {now}, {now}, {now}
from unnest(array[{changed}]) as account;
update raw_invoiz.contacts set _sdc_deleted_at = {now}, _sdc_batched_at = {now}, email = null
where account in ({changed}) and id = 2;
"""


@dataclass
class Dbt:
    """One dbt command: wall time, the load average before it, and what it did (from run_results.json)."""

    seconds: float
    load: str
    nodes: int
    rows_written: int
    models_writing: int
    changed_accounts: str
    summary: str
    slowest: str  # the nodes that took longest, with dbt's execution time
    elapsed: float  # dbt's own elapsed time of the nodes; the rest of `seconds` is dbt's start-up and exit
    node_seconds: dict[str, float]  # every node's execution time (dbt's), by name


@dataclass
class Step:
    name: str
    run: Dbt  # `dbt run`: the marts step
    test: Dbt  # `dbt test`: every data and unit test, as `dbt build` runs them


def say(message: str) -> None:
    print(message, flush=True)


def dbt(pg_env: dict[str, str], workdir: Path, *args: str) -> Dbt:
    """Time one dbt command (wall clock around the process) and read what it did from run_results.json."""
    load = bench_machine.load_average()
    target = workdir / "target"
    command = [
        str(DBT),
        *args,
        "--project-dir",
        str(PROJECT_ROOT / "transform"),
        "--profiles-dir",
        str(PROJECT_ROOT / "transform" / "profiles"),
        "--target-path",
        str(target),
        "--log-path",
        str(workdir / "logs"),
        "--vars",
        f"{{as_of_date: '{AS_OF}'}}",
    ]
    started = time.perf_counter()
    result = subprocess.run(
        command, env=dbt_env(pg_env, DATABASE), capture_output=True, text=True, timeout=7200, check=False
    )
    seconds = time.perf_counter() - started
    summary = next((line.strip() for line in reversed(result.stdout.splitlines()) if "PASS=" in line), "")
    if result.returncode != 0:
        raise SystemExit(f"dbt {' '.join(args)} failed (exit {result.returncode}): {summary}\n{result.stdout[-4000:]}")
    run_results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))
    results = run_results["results"]
    written = [
        int((r.get("adapter_response") or {}).get("rows_affected") or 0)
        for r in results
        if r["unique_id"].startswith("model.")
    ]
    changed = sorted({n for _, n in re.findall(r"(\w+): (\d+) changed account\(s\)", result.stdout)})
    slowest = sorted(results, key=lambda r: r.get("execution_time") or 0, reverse=True)[:4]
    return Dbt(
        seconds=seconds,
        load=load,
        nodes=len(results),
        rows_written=sum(written),
        models_writing=sum(1 for w in written if w > 0),
        changed_accounts=", ".join(changed) or "—",
        summary=summary[summary.find("PASS=") :] if summary else "",
        slowest=", ".join(f"{r['unique_id'].split('.')[-1]} {r.get('execution_time') or 0:.1f} s" for r in slowest),
        elapsed=float(run_results.get("elapsed_time") or 0),
        node_seconds={r["unique_id"].split(".")[-1]: float(r.get("execution_time") or 0) for r in results},
    )


def step(pg_env: dict[str, str], workdir: Path, name: str, *run_args: str) -> Step:
    run = dbt(pg_env, workdir, "run", *run_args)
    test = dbt(pg_env, workdir, "test")
    say(
        f"  {name}: dbt run {run.seconds:.1f} s (load {run.load}; {run.nodes} models, {run.rows_written:,} rows "
        f"written by {run.models_writing}; changed accounts {run.changed_accounts}); "
        f"dbt test {test.seconds:.1f} s ({test.nodes} tests)"
    )
    return Step(name, run, test)


def scale_sql(**counts: int) -> str:
    """tests/dbt/fixtures/scale.sql with its psql variables (``:accounts``, ``:invoices``, ``:contacts``) filled in."""
    return re.sub(
        r"(?<![:\w]):(accounts|invoices|contacts)\b",
        lambda m: str(int(counts[m.group(1)])),
        SCALE_SQL.read_text(encoding="utf-8"),
    )


def generate(pg_env: dict[str, str], accounts: int, invoices: int, contacts: int) -> float:
    started = time.perf_counter()
    with connect(pg_env, DATABASE, autocommit=True) as conn:
        conn.execute(
            FIXTURE.read_text(encoding="utf-8")
        )  # creates schema raw_invoiz with the tables target-postgres makes
        conn.execute(scale_sql(accounts=accounts, invoices=invoices, contacts=contacts))
        for table in ("invoices", "contacts", "invoice_payments"):
            conn.execute(f"vacuum analyze raw_invoiz.{table}")  # a table loaded long ago: its statistics are known
    return time.perf_counter() - started


def change(pg_env: dict[str, str], accounts: int, changed: int, invoices: int) -> list[str]:
    step = max(1, accounts // changed)
    names = [f"a{a:04d}" for a in range(1, accounts + 1, step)][:changed]
    now = "timestamp '2026-11-29 03:00'"
    listed = ", ".join(f"'{n}'" for n in names)
    with connect(pg_env, DATABASE, autocommit=True) as conn:
        conn.execute(CHANGE.format(changed=listed, now=now, invoices=invoices))
    return names


def run(args: argparse.Namespace) -> str:
    if not DBT.exists():
        raise SystemExit(f"dbt is not installed at {DBT.relative_to(PROJECT_ROOT)} (run `make install`)")
    pg_env, started_db = database_server()
    machine = bench_machine.describe(pg_env, "yours, from PG* variables" if os.environ.get("PGHOST") else "embedded")
    workdir = Path(tempfile.mkdtemp(prefix="tap-invoiz-bench-marts-"))
    total = args.accounts * args.invoices
    try:
        recreate_database(pg_env, DATABASE)
        say(f"generating {total:,} invoices in {args.accounts:,} accounts ...")
        seconds = generate(pg_env, args.accounts, args.invoices, args.contacts)
        say(f"  {seconds:.0f} s")
        dbt(pg_env, workdir, "seed")
        full = step(pg_env, workdir, "full rebuild (`--full-refresh`)", "--full-refresh")
        names = change(pg_env, args.accounts, args.changed, args.invoices)
        incremental = step(pg_env, workdir, f"{len(names)} accounts changed")
        no_change = step(pg_env, workdir, "no change")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        drop_database(pg_env, DATABASE)
        if started_db:
            embedded_db.release()
    return render(args, total, full, incremental, no_change, machine)


def render(args, total: int, full: Step, incremental: Step, no_change: Step, machine: dict[str, str]) -> str:
    ratio = incremental.run.seconds / full.run.seconds
    steps = (full, incremental, no_change)
    met = ratio <= TARGET_RATIO and incremental.run.seconds <= TARGET_SECONDS
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        HEADING,
        "",
        f"Written by `.venv/bin/python -m bench.marts` (also run by `make bench`), {when}: {total:,} invoices in "
        f"{args.accounts:,} accounts ({args.invoices:,} invoices and {args.contacts:,} contacts each, raw rows "
        f"generated in PostgreSQL), {args.changed} accounts changed. Target: the marts step (`dbt run`) of the "
        f"changed cycle ≤ {TARGET_RATIO:g} × a full rebuild and under {TARGET_SECONDS:g} s on this machine. Each "
        "step is `dbt run` then `dbt test` (together what `dbt build` runs), one run each, one after another; the "
        "load average (1/5/15 min) is read before each command — the machine is shared, compare the ratios.",
        "",
        "| step | `dbt run` | ÷ full | models that wrote rows | rows written | load before | `dbt test` | ÷ full |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in (full, incremental, no_change):
        lines.append(
            f"| {s.name} | {s.run.seconds:.1f} s | **{s.run.seconds / full.run.seconds:.2f}** | "
            f"{s.run.models_writing} of {s.run.nodes} | {s.run.rows_written:,} | {s.run.load} | "
            f"{s.test.seconds:.1f} s | {s.test.seconds / full.test.seconds:.2f} |"
        )
    lines += [
        "",
        f"- Changed accounts the account-keyed models found: {incremental.run.changed_accounts} in the changed cycle, "
        f"{no_change.run.changed_accounts} without changes (customers are recomputed for those accounts only).",
        f"- Nodes of a no-change build: {no_change.run.nodes} models (`{no_change.run.summary}`) and "
        f"{no_change.test.nodes} tests (`{no_change.test.summary}`); the views and the small tables are re-created, "
        "the incremental models insert nothing.",
        "- The tests read whole tables and views (uniqueness, relationships, the reconciliation to the cent), so "
        "they cost the same in every cycle.",
        "- What a cycle costs beyond the no-change floor (dbt's start-up and per-node work, the account and customer "
        "versions, re-creating the views): changed "
        f"{incremental.run.seconds - no_change.run.seconds:.1f} s against a full rebuild's "
        f"{full.run.seconds - no_change.run.seconds:.1f} s"
        + (
            f" ({(incremental.run.seconds - no_change.run.seconds) / (full.run.seconds - no_change.run.seconds):.2f})."
            if full.run.seconds > no_change.run.seconds
            else "."
        ),
        "- Slowest models (dbt's execution time, threads overlap): "
        + "; ".join(f"{s.name}: {s.run.slowest}" for s in (full, incremental, no_change))
        + ".",
        "- dbt's start-up and exit (the wall time of `dbt run` less dbt's own elapsed time of its nodes: Python "
        "imports, reading the project, writing manifest.json): "
        + ", ".join(f"{s.name} {s.run.seconds - s.run.elapsed:.1f} s of {s.run.seconds:.1f} s" for s in steps)
        + ".",
        f"- Verdict: the marts step of the changed cycle took {ratio:.2f} × the full rebuild "
        f"({incremental.run.seconds:.1f} s): target " + ("**met**." if met else "**not met**."),
        *([] if met else [bound(full, incremental, no_change)]),
        "",
        "Every model's `dbt run` time (dbt's execution time; up to `threads` models run at once, so they overlap):",
        "",
        "| model | " + " | ".join(s.name for s in steps) + " |",
        "|---|" + "---|" * len(steps),
        *(
            f"| {name} | " + " | ".join(f"{s.run.node_seconds.get(name, 0):.2f} s" for s in steps) + " |"
            for name in sorted(full.run.node_seconds, key=lambda n: -incremental.run.node_seconds.get(n, 0))
        ),
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
    ]
    return "\n".join(lines) + "\n"


def bound(full: Step, incremental: Step, no_change: Step) -> str:
    """What keeps the changed cycle above the target: the fixed part of every `dbt run`, then the changed work."""
    startup = no_change.run.seconds - no_change.run.elapsed
    return (
        f"- What bounds it: a `dbt run` that changes nothing costs {no_change.run.seconds:.1f} s "
        f"({no_change.run.seconds / full.run.seconds:.2f} × the full rebuild): dbt's start-up and exit "
        f"{startup:.1f} s ({startup / full.run.seconds:.2f}) and its {no_change.run.nodes} models in the order of "
        f"their dependencies ({no_change.run.elapsed:.1f} s; each model opens its own connection, checks its "
        "contract, re-creates its view or table or merges its changed keys; the versions read the raw tables and "
        "every customer, table below). The changed accounts and their customers add "
        f"{incremental.run.seconds - no_change.run.seconds:.1f} s."
    )


def write_section(path: Path, section: str) -> None:
    """Replace the "## Marts" section of docs/BENCHMARKS.md (up to the next heading or marker), or add it."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    start = old.find("\n" + HEADING + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + section
    else:
        ends = [i for i in (old.find("\n## ", start + 1), old.find("\n<!-- ", start + 1)) if i >= 0]
        end = min(ends) if ends else -1  # the next section, or another script's marked section
        rest = old[end + 1 :] if end >= 0 else ""
        new = old[: start + 1] + section.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
    path.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.marts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--invoices", type=int, default=1000, help="invoices per account")
    parser.add_argument("--contacts", type=int, default=200, help="contacts per account")
    parser.add_argument("--changed", type=int, default=30, help="accounts that change before the incremental cycle")
    parser.add_argument("--output", default=str(DOC_PATH), help="file whose Marts section is written; '-' prints only")
    args = parser.parse_args(argv)
    section = run(args)
    say("\n" + section)
    if args.output != "-":
        write_section(Path(args.output), section)
        say(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
