"""Each run gets only its own credentials: the secrets file, and the environment of one account's or one shard's run
with every other account's (and tap-invoiz's own) credential variables removed (see accounts.py)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from invoiz_ops.account_files import (
    DEFAULT_SECRETS,
    SHARD_EXTRACTOR,
    AccountsError,
    Declared,
)
from tap_invoiz.accounts import (
    AccountError,
    is_credential_variable,
    pack_credentials,
    plugin_variable,
)


def secrets_path(project: Path, env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("INVOIZ_FLEET_SECRETS") or project / DEFAULT_SECRETS)


def read_secrets(path: Path) -> dict[str, str]:
    """KEY=value lines (``export`` and quotes allowed, # comments). Refused unless only its owner can read it."""
    if not path.exists():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AccountsError(f"{path.name} is readable by others (mode {mode:o}); run: chmod 600 {path.name}")
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("'\"")
    return values


def credential_values(account: Declared, env: dict, secrets: dict) -> dict[str, str]:
    """{variable: value} of the account's own credentials (the environment wins over the secrets file)."""
    return {var: env.get(var) or secrets.get(var, "") for var in account.credential_variables().values()}


def env_without_credentials(env: dict) -> dict[str, str]:
    """``env`` without tap-invoiz's and every account's credential variables."""
    return {k: v for k, v in env.items() if not is_credential_variable(k)}


def step_env(account: Declared, env: dict, secrets: dict) -> dict[str, str]:
    """The environment for one account's run: its own credentials only; tap-invoiz's and every other account's
    credential variables removed, so nothing can be inherited or read by the wrong account."""
    return {**env_without_credentials(env), **credential_values(account, env, secrets)}


def shard_env(shard: list[Declared], env: dict, secrets: dict) -> dict[str, str]:
    """Like step_env for the accounts of one shard (their own credentials, nobody else's, packed into one variable:
    PACKED_CREDENTIALS says why), plus tap-invoiz-fleet's ``accounts`` setting naming them."""
    own = {var: value for acct in shard for var, value in credential_values(acct, env, secrets).items()}
    result = {**env_without_credentials(env), **pack_credentials(own)}
    try:
        entries = [acct.model().entry() for acct in shard]
    except AccountError as exc:
        raise AccountsError(str(exc)) from None
    result[plugin_variable(SHARD_EXTRACTOR, "accounts")] = json.dumps(entries)
    return result


def shard_of(account: Declared, shards: int) -> int:
    """1..shards, stable for an account whatever else is added or removed (a hash of its extractor name)."""
    return int(hashlib.sha256(account.extractor.encode()).hexdigest(), 16) % shards + 1
