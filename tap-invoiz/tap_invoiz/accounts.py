"""What an invoiz account of a Meltano project is: its name, its extractor, its credential variables, its settings.

The one definition used by the tap's shard entry point (``tap-invoiz-fleet``, :mod:`tap_invoiz.shard`), the Dagster
code location and the accounts CLI (``python -m invoiz_ops.accounts``). Standard library only: the Dagster
virtualenv installs the tap without its dependencies just to import this module.

An account ``acme`` is the extractor ``tap-invoiz--acme`` (``inherit_from: tap-invoiz``) whose credentials come only
from its own variables ``TAP_INVOIZ__ACME_API_KEY``, ``TAP_INVOIZ__ACME_API_KEY_SECRET`` and
``TAP_INVOIZ__ACME_INSTALLATION_ID`` (Meltano's names for that extractor's settings), never from tap-invoiz's.
A shard's run may get them packed into one variable instead (:data:`PACKED_CREDENTIALS`, :func:`pack_credentials`).
(Not to be confused with :mod:`tap_invoiz.account_state`: an account's entry in the tap's state.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PARENT = "tap-invoiz"
EXTRACTOR_PREFIX = f"{PARENT}--"
CREDENTIALS = ("api_key", "api_key_secret", "installation_id")
#: Non-secret settings an account may set for itself; every other setting is tap-invoiz's, the same for all accounts.
#: Not overridable: ``account`` (it is the account), ``allow_installation_change`` (one run's decision, not a property
#: of the account), the credentials (only from the account's own variables).
OVERRIDABLE_SETTINGS = (
    "start_date",
    "page_size",
    "max_concurrency",
    "full_scan_every",
    "request_timeout",
    "max_retries",
    "api_url",
    "app_url",
    "user_agent",
)
NAME_MAX_LENGTH = 63
# Lower-case letters and digits in groups joined by single hyphens: the name is part of the extractor name, where
# "--" separates it from tap-invoiz, and of the variable names, where "-" becomes "_".
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# tap-invoiz's own and every account's credential variables (TAP_INVOIZ_API_KEY, TAP_INVOIZ__ACME_API_KEY, ...)
_CREDENTIAL_VARIABLE = re.compile(r"^TAP_INVOIZ(__[A-Z0-9_]+)?_(API_KEY|API_KEY_SECRET|INSTALLATION_ID)$")
#: One variable holding several accounts' credential variables as a JSON object {variable: value}: how an
#: orchestrator hands a shard its accounts' credentials. Meltano copies the whole environment each time it resolves
#: a setting (about 5,700 times per `meltano run`), so three variables per account made a shard's Meltano cost grow
#: with its accounts (about 1 CPU-s per 125 accounts, measured); one variable costs the same for any number.
PACKED_CREDENTIALS = "TAP_INVOIZ_FLEET_CREDENTIALS"


class AccountError(ValueError):
    """An account declaration that cannot be used; the message names the account and what to fix, never a secret."""


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be an account name, or None when it can."""
    if not isinstance(name, str) or not name:
        return f"account name {name!r} must be a non-empty string"
    if len(name) > NAME_MAX_LENGTH or not _NAME.match(name):
        return (
            f"account name {name!r} must be lower-case letters and digits joined by single hyphens, at most "
            f"{NAME_MAX_LENGTH} characters (it becomes the extractor name {EXTRACTOR_PREFIX}<name> and part of its "
            "variable names)"
        )
    return None


def check_name(name: object) -> str:
    problem = name_problem(name)
    if problem:
        raise AccountError(problem)
    return name  # type: ignore[return-value]


def extractor_name(name: str) -> str:
    """acme → tap-invoiz--acme"""
    return EXTRACTOR_PREFIX + name


def name_of_extractor(extractor: str) -> str | None:
    """tap-invoiz--acme → acme; None for an extractor that is not named as an account."""
    if not extractor.startswith(EXTRACTOR_PREFIX):
        return None
    return extractor.removeprefix(EXTRACTOR_PREFIX)


def env_prefix(plugin: str) -> str:
    """Meltano's variable prefix of a plugin: tap-invoiz--bolt-gmbh → TAP_INVOIZ__BOLT_GMBH."""
    return plugin.upper().replace("-", "_")


def plugin_variable(plugin: str, setting: str) -> str:
    """Meltano's variable for a setting of a plugin: (tap-invoiz--bolt-gmbh, api_key) → TAP_INVOIZ__BOLT_GMBH_API_KEY."""
    return f"{env_prefix(plugin)}_{setting.upper()}"


def setting_variable(name: str, setting: str) -> str:
    """The account's own variable for one of its settings: ("bolt-gmbh", "api_key") → TAP_INVOIZ__BOLT_GMBH_API_KEY."""
    return plugin_variable(extractor_name(name), setting)


def credential_variables(name: str) -> dict[str, str]:
    """{setting: variable} of the account's three credentials."""
    return {setting: setting_variable(name, setting) for setting in CREDENTIALS}


def is_credential_variable(variable: str) -> bool:
    """Whether an environment variable holds tap-invoiz's or any account's credential (or several, packed)."""
    return variable == PACKED_CREDENTIALS or bool(_CREDENTIAL_VARIABLE.match(variable))


def pack_credentials(values: dict[str, str]) -> dict[str, str]:
    """{PACKED_CREDENTIALS: JSON} of credential variables {variable: value} (empty values left out)."""
    return {PACKED_CREDENTIALS: json.dumps({k: v for k, v in values.items() if v}, sort_keys=True)}


def credentials_in(env: Mapping[str, str]) -> dict[str, str]:
    """{variable: value} of every credential variable in ``env``, the packed ones unpacked (a variable set on its
    own wins over the same one packed)."""
    packed = env.get(PACKED_CREDENTIALS)
    try:
        values = json.loads(packed) if packed else {}
    except ValueError:
        raise AccountError(f"{PACKED_CREDENTIALS} is not a JSON object of credential variables") from None
    if not isinstance(values, dict) or not all(
        isinstance(v, str) and _CREDENTIAL_VARIABLE.match(k) for k, v in values.items()
    ):
        raise AccountError(f"{PACKED_CREDENTIALS} is not a JSON object of credential variables")
    values.update({k: v for k, v in env.items() if _CREDENTIAL_VARIABLE.match(k)})
    return values


@dataclass(frozen=True)
class Account:
    """One account: its name, the tap's ``account`` setting (defaults to the name) and its own non-secret settings."""

    name: str
    account: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name)
        if not self.account:
            object.__setattr__(self, "account", self.name)

    @property
    def extractor(self) -> str:
        return extractor_name(self.name)

    def credential_variables(self) -> dict[str, str]:
        return credential_variables(self.name)

    def entry(self) -> dict[str, Any]:
        """The account as an entry of a list (accounts/fleet.yml, tap-invoiz-fleet's ``accounts``)."""
        return {"name": self.name, "account": self.account, **self.settings}

    def tap_config(self, base: dict[str, Any], env: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
        """The tap config of this account (``base`` without its credentials, its own settings, its own credentials
        from ``env``) and the names of its credential variables that are not set."""
        config = {k: v for k, v in base.items() if k not in (*CREDENTIALS, "accounts")}
        config.update({k: v for k, v in self.settings.items() if v not in (None, "")})
        config["account"] = self.account
        missing = []
        for setting, variable in self.credential_variables().items():
            if env.get(variable):
                config[setting] = env[variable]
            else:
                missing.append(variable)
        return config, missing


def account_from_entry(entry: object, where: str = "accounts") -> Account:
    """An entry of an account list: a name, or ``{"name": ..., "account": ..., <overridable settings>}``.
    Refuses credentials (they come from the account's own variables) and settings that are not overridable."""
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or "name" not in entry:
        raise AccountError(f"{where}: every entry needs a `name` (got {type(entry).__name__})")
    name = entry["name"]
    problem = name_problem(name)
    if problem:
        raise AccountError(f"{where}: {problem}")
    secrets = sorted(set(entry) & set(CREDENTIALS))
    if secrets:
        raise AccountError(
            f"{where}: account {name!r} has credentials ({', '.join(secrets)}) in the list; they belong in "
            f"{setting_variable(name, 'api_key')} etc. (environment or secrets file)"
        )
    unknown = sorted(set(entry) - {"name", "account", *OVERRIDABLE_SETTINGS})
    if unknown:
        raise AccountError(
            f"{where}: account {name!r}: settings {unknown} cannot be set per account; allowed: "
            + ", ".join(OVERRIDABLE_SETTINGS)
        )
    account = entry.get("account")
    if account is not None and (not isinstance(account, str) or not account.strip()):
        raise AccountError(f"{where}: account {name!r}: `account` must be a non-empty string")
    settings = {k: entry[k] for k in OVERRIDABLE_SETTINGS if k in entry}
    return Account(name=name, account=account or name, settings=settings)


def parse_entries(value: object, where: str = "accounts") -> list[object]:
    """The raw entries of an account list, given as a list or as its JSON text (how Meltano passes an array setting
    through an environment variable)."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise AccountError(f"{where}: not a JSON list ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, list):
        raise AccountError(f"{where}: must be a list of accounts (got {type(value).__name__})")
    return value


def duplicate_problems(accounts: list[Account], where: str = "accounts") -> list[str]:
    """Two entries with one name, or two names with one `account` (rows and state would mix)."""
    problems = []
    names: set[str] = set()
    by_account: dict[str, str] = {}
    for acct in accounts:
        if acct.name in names:
            problems.append(f"{where}: name {acct.name!r} is declared twice")
            continue
        names.add(acct.name)
        if acct.account in by_account:
            problems.append(
                f"{where}: account {acct.account!r} is used by {by_account[acct.account]!r} and {acct.name!r}: rows "
                "and state would mix"
            )
        by_account.setdefault(acct.account, acct.name)
    return problems
