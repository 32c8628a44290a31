"""What one Dagster step runs: `meltano run` for one account (or shard) or for the marts, in private folders.

Standard library, invoiz_ops and tap_invoiz.results only (runs inside the Dagster code location's virtualenv, which
has the tap installed without its dependencies; Meltano, the tap and dbt run from the project's .venv/.meltano as
subprocesses).

Settings, all from the environment (``ops/invoiz_ops/fleet/deploy.py`` sets them; see docs/FLEET.md):
  INVOIZ_FLEET_PROJECT   the Meltano project (default: this checkout)
  INVOIZ_FLEET_MELTANO   the meltano executable (default: <checkout>/.venv/bin/meltano)
  INVOIZ_FLEET_PLUGINS   the .meltano folder whose plugin virtualenvs are used (default: <checkout>/.meltano)
  INVOIZ_FLEET_WORK      per-step folders (default: <project>/.fleet/steps)
  MELTANO_DATABASE_URI   Meltano's system database, where state lives (PostgreSQL for a fleet)
  PG*                    the warehouse (target-postgres and dbt)
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from invoiz_ops.run_dirs import private_run_dirs
from tap_invoiz.results import COUNTS, OK, read_results

CHECKOUT = Path(__file__).resolve().parents[3]  # ops/invoiz_ops/fleet/runner.py → the checkout


def project_root() -> Path:
    return Path(os.environ.get("INVOIZ_FLEET_PROJECT") or CHECKOUT).resolve()


def meltano_executable() -> str:
    return os.environ.get("INVOIZ_FLEET_MELTANO") or str(CHECKOUT / ".venv" / "bin" / "meltano")


def step_dirs(step: str) -> dict[str, str]:
    """The step's private Meltano system dir and dbt dirs (invoiz_ops.run_dirs), under INVOIZ_FLEET_WORK/<step>."""
    work = Path(os.environ.get("INVOIZ_FLEET_WORK") or project_root() / ".fleet" / "steps")
    plugins = Path(os.environ.get("INVOIZ_FLEET_PLUGINS") or CHECKOUT / ".meltano")
    return private_run_dirs(work / step, plugins)


@dataclass
class RunResult:
    ok: bool
    returncode: int
    seconds: float
    cpu_seconds: float
    summary: dict = field(default_factory=dict)  # the tap's numbers over its accounts (records, new, …, requests)
    tail: str = ""  # last log lines (the tap and Meltano log no secrets)
    accounts: dict = field(default_factory=dict)  # {account: {"ok", records, …, "error"}} from the tap's result lines
    tail_full: str = field(default="", repr=False)  # the last 20,000 characters of the log
    retried: bool = False  # run twice after losing a CREATE race (see _DDL_RACE)


def parse_accounts(log: str) -> dict[str, dict]:
    """Per-account outcome of a run from the tap's result lines (tap_invoiz.results), by the tap's `account`:
    {"ok", records, new, changed, deleted, requests, retries, seconds, and "error" (its first line) when failed}."""
    outcomes = {}
    for account, result in read_results(log).items():
        entry = {"ok": result.get("status") == OK, **{k: int(result.get(k) or 0) for k in COUNTS}}
        entry["seconds"] = round(float(result.get("seconds") or 0), 1)
        if not entry["ok"]:
            entry["error"] = result.get("error") or "failed (no error line)"
        outcomes[account] = entry
    return outcomes


def summarise(outcomes: dict[str, dict]) -> dict:
    """The run's numbers over its accounts (one for a step per account): records, new, …, requests, seconds."""
    if not outcomes:
        return {}
    totals = {k: sum(o[k] for o in outcomes.values()) for k in COUNTS}
    return {**totals, "seconds": round(sum(o["seconds"] for o in outcomes.values()), 1)}


# Two targets creating the same schema or table at once in a fresh warehouse (the first cycle of a fleet): PostgreSQL
# lets one CREATE win and the other fail with one of these. Loads are idempotent, so such a run is simply run again.
_DDL_RACE = re.compile(
    r"pg_namespace_nspname_index|pg_type_typname_nsp_index|pg_class_relname_nsp_index|"
    r"relation \S+ already exists|schema \S+ already exists|tuple concurrently updated"
)
# The tap finished (its summary line) and yet the run failed: the target or Meltano's state write failed after it.
# Seen now and then with parallel first loads (cause not pinned down; the log of the failed try is kept).
_TAP_FINISHED = re.compile(r"sync done in [\d.,]+ s:|fleet: \d+ accounts in")


def _worth_retrying(result: RunResult) -> bool:
    return not result.ok and bool(_DDL_RACE.search(result.tail_full) or _TAP_FINISHED.search(result.tail_full))


def meltano(args: list[str], env: dict[str, str], step: str, timeout: float = 3600) -> RunResult:
    """Run ``meltano ARGS`` in the project with the step's private folders; never raises for a failed run.
    A run that failed after the tap had finished (a lost race creating the warehouse's tables with another step, or
    the target or Meltano failing after the tap) is run once more: loads are idempotent (state, upserts)."""
    result = _meltano_once(args, env, step, timeout)
    if _worth_retrying(result):
        folder = Path(step_dirs(step)["MELTANO_SYS_DIR_ROOT"]).parent
        (folder / "last-run.log").replace(folder / "last-failed-try.log")
        time.sleep(1 + random.random() * 2)
        again = _meltano_once(args, env, step, timeout)
        again.seconds = round(again.seconds + result.seconds, 1)
        again.cpu_seconds = round(again.cpu_seconds + result.cpu_seconds, 2)
        again.retried = True
        return again
    return result


def _meltano_once(args: list[str], env: dict[str, str], step: str, timeout: float) -> RunResult:
    project = project_root()
    full_env = {
        **env,
        **step_dirs(step),
        "MELTANO_PROJECT_ROOT": str(project),
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    started, cpu_before = time.monotonic(), os.times()
    try:
        proc = subprocess.run(
            [meltano_executable(), *args],
            cwd=project,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        returncode, log = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, log = -1, f"timed out after {timeout:.0f} s\n{exc.stderr or ''}"
    cpu_after = os.times()
    log_file = Path(full_env["MELTANO_SYS_DIR_ROOT"]).parent / "last-run.log"  # the step's whole log, for a post-mortem
    log_file.write_text(log)
    log_file.chmod(0o600)
    cpu = (cpu_after.children_user - cpu_before.children_user) + (
        cpu_after.children_system - cpu_before.children_system
    )
    tail = "\n".join(log.strip().splitlines()[-25:])
    outcomes = parse_accounts(log)
    return RunResult(
        ok=returncode == 0,
        returncode=returncode,
        seconds=round(time.monotonic() - started, 1),
        cpu_seconds=round(cpu, 2),
        summary=summarise(outcomes),
        tail=tail,
        accounts=outcomes,
        tail_full=log[-20000:],
    )
