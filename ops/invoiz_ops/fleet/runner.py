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
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from invoiz_ops.run_dirs import private_run_dirs
from tap_invoiz.accounts import AccountError, credentials_in
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
    first_error: str = ""  # the first error line of the process that failed (secrets masked)
    failed_plugin: str = ""  # which process it came from: a plugin name, or "meltano"
    stdout: str = field(default="", repr=False)  # `meltano invoke`: what the plugin wrote (Singer messages)


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


# Meltano's console lines: "<timestamp> [<level>] <name padded to 12> <message>"; name is "meltano" or a plugin.
_CONSOLE_LINE = re.compile(r"^\S+ \[(?P<level>[a-z]+)\s*\] (?P<name>\S+) ?(?P<message>.*)$")
# singer-sdk's log format inside a plugin's line: "<date> <time> | ERROR    | <logger> | <message>"
_SDK_ERROR = re.compile(r"\|\s*(?:ERROR|CRITICAL)\s*\|[^|]*\|\s*(?P<message>.*)$")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Violation|Exit|Interrupt|Failure|Warning)\b.*")
_BLOCK_FAILED = {"Extractor failed": "extractor", "Loader failed": "loader", "Mappers failed": "mapper"}
_SECRET_NAMES = re.compile(r"API_KEY|SECRET|INSTALLATION_ID|PASSWORD|TOKEN|DATABASE_URI|SQLALCHEMY_URL")


def console_lines(log: str) -> list[tuple[str, str, str]]:
    """(level, name, message) of every Meltano console line; lines of another shape belong to the line before."""
    lines: list[tuple[str, str, str]] = []
    for raw in log.splitlines():
        match = _CONSOLE_LINE.match(raw)
        if match:
            name = match.group("name")
            message = raw[match.start("name") + len(name) :]
            message = message[max(1, 13 - len(name)) :] if len(message) > 1 else ""  # name padded to 12, one space
            lines.append((match.group("level"), name, message))
        elif raw.strip():
            lines.append(("info", lines[-1][1] if lines else "meltano", raw))
    return lines


def _first_plugin_error(messages: list[str]) -> str:
    """The first error a plugin printed: the exception line of its first traceback, else its first ERROR log line,
    else the last line it printed (tap-invoiz ends with its one-line reason)."""
    for index, message in enumerate(messages):
        if message.startswith("Traceback (most recent call last)"):
            for line in messages[index + 1 :]:
                if line and not line[0].isspace() and _EXCEPTION_LINE.match(line):
                    return line
    for message in messages:
        found = _SDK_ERROR.search(message)
        if found:
            return found.group("message")
    return ""


def first_error(log: str, env: dict[str, str] | None = None, plugins: list[str] | None = None) -> tuple[str, str]:
    """(process, its first error line) of a failed `meltano run`: the plugin Meltano reports failed ("Loader failed"
    → the loader's lines), else Meltano's own first error. Known secret values of ``env`` are masked. ``plugins``:
    the plugin names of the command, to name a failed plugin that printed nothing."""
    lines = console_lines(log)
    meltano_errors = [m for level, name, m in lines if name == "meltano" and level in ("error", "critical")]
    plugin_lines: dict[str, list[str]] = {}
    for _, name, message in lines:
        if name != "meltano":
            plugin_lines.setdefault(name, []).append(message)
    failed_kinds = [kind for text, kind in _BLOCK_FAILED.items() if any(text in m for m in meltano_errors)]
    failed_kinds += ["extractor", "loader"] if any("Extractor and loader failed" in m for m in meltano_errors) else []
    found = ("", "")
    for name, messages in plugin_lines.items():
        kind = _plugin_kind(name)
        if failed_kinds and kind not in failed_kinds:
            continue
        line = _first_plugin_error(messages)
        if not line and kind == "extractor" and "extractor" in failed_kinds and messages:
            line = messages[-1].strip()  # tap-invoiz's reason is its last line (SystemExit), not a log record
        if line:
            found = (name, line)
            break
        if kind in failed_kinds:  # the process printed no error at all: it was killed
            found = (
                name,
                f"{name} stopped without an error message (killed by a signal such as SIGKILL, or out of memory)",
            )
    for name in plugins or []:
        if not found[1] and _plugin_kind(name) in failed_kinds and name not in plugin_lines:
            found = (
                name,
                f"{name} stopped without an error message (killed by a signal such as SIGKILL, or out of memory)",
            )
    if not found[1]:
        other = [m for m in meltano_errors if m not in ("Block run completed",)]
        errors = [m for _, name, m in lines if name != "meltano" and _SDK_ERROR.search(m)]
        found = ("meltano", other[0]) if other else ("", errors[0] if errors else "")
    return found[0], mask_secrets(found[1].strip(), env or {})[:1000]


def _plugin_kind(name: str) -> str:
    if name.startswith("tap-"):
        return "extractor"
    if name.startswith("target-"):
        return "loader"
    return "utility"


def mask_secrets(text: str, env: dict[str, str]) -> str:
    """``text`` with the values of secret-looking variables of ``env`` (api keys, passwords, …) replaced by ***."""
    try:
        packed = credentials_in(env)  # a shard's credentials, packed into one variable
    except AccountError:
        packed = {}
    for key, value in {**env, **packed}.items():
        if value and len(value) >= 4 and _SECRET_NAMES.search(key) and value in text:
            text = text.replace(value, "***")
    return text


def meltano(
    args: list[str], env: dict[str, str], step: str, timeout: float = 3600, input_text: str | None = None
) -> RunResult:
    """Run ``meltano ARGS`` once in the project with the step's private folders; never raises for a failed run.
    There is no second try: a crash of the tap, the target or Meltano is the step's result. (The warehouse tables are
    created or altered by the schema step before the loads, so parallel targets have no DDL to race on.)"""
    return _meltano_once(args, env, step, timeout, input_text)


def _meltano_once(
    args: list[str], env: dict[str, str], step: str, timeout: float, input_text: str | None = None
) -> RunResult:
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
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
        # `meltano run` writes its log to stderr; `meltano invoke <tap>` writes Singer messages to stdout
        returncode, log, stdout = proc.returncode, proc.stderr, proc.stdout
        if not args or args[0] != "invoke":
            log, stdout = stdout + log, ""
    except subprocess.TimeoutExpired as exc:
        returncode, log, stdout = -1, f"timed out after {timeout:.0f} s\n{exc.stderr or ''}", ""
    cpu_after = os.times()
    log_file = Path(full_env["MELTANO_SYS_DIR_ROOT"]).parent / "last-run.log"  # the step's whole log, for a post-mortem
    log_file.write_text(log)
    log_file.chmod(0o600)
    cpu = (cpu_after.children_user - cpu_before.children_user) + (
        cpu_after.children_system - cpu_before.children_system
    )
    tail = mask_secrets("\n".join(log.strip().splitlines()[-25:]), full_env)
    failed_plugin, error_line = (
        ("", "")
        if returncode == 0
        else first_error(log, full_env, [a for a in args if a.startswith(("tap-", "target-"))])
    )
    if returncode == -1 and not error_line:
        failed_plugin, error_line = "meltano", log.splitlines()[0]
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
        first_error=error_line,
        failed_plugin=failed_plugin,
        stdout=stdout,
    )
