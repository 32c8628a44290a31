"""A full refresh of chosen accounts inside a shard: their entries are removed from the shard's Meltano state.

In shard mode the accounts of a shard share one Meltano state id, inside which the tap keeps every account apart
(``stream_state["accounts"][<account>]``, tap_invoiz/account_state.py). An account without an entry is synced as on
its first run: a full listing of every row, with the full-refresh bookkeeping that lets staging retire rows invoiz no
longer has. Removing the chosen accounts' entries (``meltano state get`` / ``meltano state set --force``) before the
shard's run therefore backfills exactly them; the other accounts of the shard keep their state. The shard's pool
keeps any other run of the same shard out meanwhile.

Standard library only (runs in the Dagster code location's virtualenv, Meltano as a subprocess through runner).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from invoiz_ops.fleet import runner


def drop_accounts(state: object, accounts: set[str]) -> int:
    """Remove the entries of ``accounts`` from every ``accounts`` mapping in a Singer/Meltano state; returns how many
    were removed."""
    removed = 0
    if isinstance(state, dict):
        entries = state.get("accounts")
        if isinstance(entries, dict):
            for account in accounts & set(entries):
                del entries[account]
                removed += 1
        for key, value in state.items():
            if key != "accounts":
                removed += drop_accounts(value, accounts)
    elif isinstance(state, list):
        for value in state:
            removed += drop_accounts(value, accounts)
    return removed


def meltano_environment() -> str:
    project = runner.project_root()
    if os.environ.get("MELTANO_ENVIRONMENT"):
        return os.environ["MELTANO_ENVIRONMENT"]
    for line in (project / "meltano.yml").read_text().splitlines():
        if line.startswith("default_environment:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return "dev"


def shard_state_id(label: str) -> str:
    """Meltano's state id of `meltano run --state-id-suffix LABEL tap-invoiz-fleet target-postgres`."""
    return f"{meltano_environment()}:tap-invoiz-fleet-to-target-postgres:{label}"


def _meltano(args: list[str], env: dict[str, str], step: str) -> subprocess.CompletedProcess:
    project = runner.project_root()
    full_env = {**env, **runner.step_dirs(step), "MELTANO_PROJECT_ROOT": str(project)}
    return subprocess.run(
        [runner.meltano_executable(), *args],
        cwd=project,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _first_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "no output")[:300]


def reset_accounts(label: str, accounts: list[str], env: dict[str, str]) -> tuple[bool, str]:
    """Drop ``accounts``' entries from the shard's state. (ok, what happened) — never raises for a failed command."""
    state_id = shard_state_id(label)
    got = _meltano(["state", "get", "--format", "json", state_id], env, label)
    if got.returncode != 0:
        return False, f"meltano state get {state_id} failed (exit {got.returncode}): {_first_error(got)}"
    text = got.stdout.strip()
    if not text or "{" not in text:
        return True, f"{state_id} has no state yet: every account's first load is a full one"
    try:
        state = json.loads(text[text.index("{") :])
    except ValueError:
        return False, f"meltano state get {state_id} printed no JSON"
    removed = drop_accounts(state, set(accounts))
    if not removed:
        return True, f"{', '.join(accounts)}: no entry in {state_id} (their next load is a full one anyway)"
    # through a file: a shard's state (fingerprints of every row) is far larger than one command-line argument may be
    folder = Path(runner.step_dirs(label)["MELTANO_SYS_DIR_ROOT"]).parent
    state_file = folder / "backfill-state.json"
    state_file.write_text(json.dumps(state))
    state_file.chmod(0o600)
    try:
        put = _meltano(["state", "set", "--force", "--input-file", str(state_file), state_id], env, label)
    finally:
        state_file.unlink(missing_ok=True)
    if put.returncode != 0:
        return False, f"meltano state set {state_id} failed (exit {put.returncode}): {_first_error(put)}"
    return True, f"{removed} state entries of {', '.join(accounts)} removed from {state_id}: full refresh"
