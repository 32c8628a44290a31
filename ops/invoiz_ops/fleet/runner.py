"""What one Dagster step runs: `meltano run` for one account (or shard) or for the marts, in private folders.

Standard library only (runs inside the Dagster code location's virtualenv; Meltano, the tap and dbt stay in the
project's .venv/.meltano and are started as subprocesses).

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

CHECKOUT = Path(__file__).resolve().parents[3]  # ops/invoiz_ops/fleet/runner.py → the checkout

_SUMMARY = re.compile(
    r"sync done in (?P<seconds>[\d.,]+) s: (?P<records>[\d,]+) records? emitted.*?; (?P<new>[\d,]+) new, "
    r"(?P<changed>[\d,]+) changed, (?P<deleted>[\d,]+) deleted; (?P<requests>[\d,]+) requests?.*?(?P<retries>[\d,]+) "
    r"retr(?:y|ies)"
)


def project_root() -> Path:
    return Path(os.environ.get("INVOIZ_FLEET_PROJECT") or CHECKOUT).resolve()


def meltano_executable() -> str:
    return os.environ.get("INVOIZ_FLEET_MELTANO") or str(CHECKOUT / ".venv" / "bin" / "meltano")


def step_dirs(step: str) -> dict[str, str]:
    """Own Meltano system dir (plugin venvs linked in) and dbt target/log dirs for one step: two `meltano run`s in one
    project overwrite each other's .meltano/run/<plugin>/ files and dbt's target/ (same as invoiz_ops.pipeline.private_run_dirs)."""
    work = Path(os.environ.get("INVOIZ_FLEET_WORK") or project_root() / ".fleet" / "steps")
    folder = work / step
    sys_dir = folder / "meltano-sys"
    sys_dir.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # .meltano/run/<plugin>/ holds the running plugin's config, secrets included
    plugins = Path(os.environ.get("INVOIZ_FLEET_PLUGINS") or CHECKOUT / ".meltano")
    for plugin_type in ("extractors", "loaders", "utilities"):
        link = sys_dir / plugin_type
        if not link.exists():
            link.symlink_to(plugins / plugin_type, target_is_directory=True)
    return {
        "MELTANO_SYS_DIR_ROOT": str(sys_dir),
        "DBT_TARGET_PATH": str(folder / "dbt-target"),
        "DBT_LOG_PATH": str(folder / "dbt-logs"),
    }


@dataclass
class RunResult:
    ok: bool
    returncode: int
    seconds: float
    cpu_seconds: float
    summary: dict = field(default_factory=dict)  # the tap's "sync done" numbers (records, new, …, requests)
    tail: str = ""  # last log lines (the tap and Meltano log no secrets)
    accounts: dict = field(default_factory=dict)  # shard runs: {name: {"ok", records, …, "error"}}
    tail_full: str = field(default="", repr=False)  # the last 20,000 characters of the log
    retried: bool = False  # run twice after losing a CREATE race (see _DDL_RACE)


def parse_summary(log: str) -> dict:
    found = list(_SUMMARY.finditer(log))
    if not found:
        return {}
    totals: dict[str, float] = {}
    for match in found:  # a shard logs one summary per account
        for key, value in match.groupdict().items():
            totals[key] = totals.get(key, 0) + float(value.replace(",", ""))
    return {k: (round(v, 1) if k == "seconds" else int(v)) for k, v in totals.items()}


_ACCOUNT_LINE = re.compile(r"fleet account '(?P<name>[^']+)': (?P<status>ok|FAILED): (?P<rest>.*)")


def parse_accounts(log: str) -> dict[str, dict]:
    """Per-account results of a shard run (tap-invoiz-fleet's `fleet account '<name>': ok|FAILED: …` lines)."""
    results = {}
    for match in _ACCOUNT_LINE.finditer(log):
        rest = match.group("rest").strip()
        entry = {"ok": match.group("status") == "ok", **parse_summary(rest)}
        if not entry["ok"]:
            entry["error"] = rest[:500]
        results[match.group("name")] = entry
    return results


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
    return RunResult(
        ok=returncode == 0,
        returncode=returncode,
        seconds=round(time.monotonic() - started, 1),
        cpu_seconds=round(cpu, 2),
        summary=parse_summary(log),
        tail=tail,
        accounts=parse_accounts(log),
        tail_full=log[-20000:],
    )
