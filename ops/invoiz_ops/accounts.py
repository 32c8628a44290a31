"""The project's invoiz accounts: declare them, list them, check them, and give each run only its own credentials.

    python -m invoiz_ops.accounts add NAME     # writes accounts/NAME.meltano.yml (accounts/README.md)
    python -m invoiz_ops.accounts generate     # accounts/fleet.yml → accounts/fleet.meltano.yml (make fleet-accounts)
    python -m invoiz_ops.accounts check        # refuses an unsafe set of accounts (make fleet-check)
    python -m invoiz_ops.accounts list         # every account extractor, its `account` and the file declaring it

What an account is (name rules, extractor ``tap-invoiz--<name>``, credential variables ``TAP_INVOIZ__<NAME>_API_KEY``
…, the settings it may override) is defined once, in the tap: :mod:`tap_invoiz.accounts`. Here: where accounts are
declared. An account is an extractor that ``inherit_from: tap-invoiz`` in ``meltano.yml`` or an include file
``accounts/*.meltano.yml``: one file per account (``add``), or a whole fleet as one list (docs/FLEET.md):

    # accounts/fleet.yml — one entry per account; only non-secret settings here
    accounts:
    - name: acme                 # → extractor tap-invoiz--acme, `account: acme`
    - name: bolt-gmbh
      start_date: "2024-01-01"

``generate`` writes ``accounts/fleet.meltano.yml`` from it (do not edit that file). Credentials come from the
environment or a secrets file (``KEY=value`` lines, mode 600: ``INVOIZ_FLEET_SECRETS``, default ``fleet.secrets.env``
in the project). ``check`` refuses accounts that share an installation, an ``account`` name or a credential
variable, lack credentials, carry secrets in YAML, or a generated file that is out of date.

Its parts: account_files.py (the include files, the fleet list, reading the project back), account_credentials.py
(the secrets file, each run's own credentials); this module is the API the fleet and the tests use, the check and the
command line. Standard library, PyYAML and :mod:`tap_invoiz.accounts` only: imported by the Dagster code location, whose virtualenv
has the tap installed without its dependencies.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from invoiz_ops.account_credentials import (
    credential_values,
    read_secrets,
    secrets_path,
    shard_env,
    shard_of,
    step_env,
)
from invoiz_ops.account_files import (
    ACCOUNTS_DIR,
    FLEET_LIST,
    GENERATED,
    PROJECT_ROOT,
    SHARD_EXTRACTOR,
    AccountsError,
    Declared,
    generate,
    load_accounts,
    read_fleet_list,
    read_yaml,
    render_generated,
    write_account,
)
from tap_invoiz.accounts import (
    CREDENTIALS,
    EXTRACTOR_PREFIX,
    PARENT,
    credential_variables,
    credentials_in,
    extractor_name,
    is_credential_variable,
    name_of_extractor,
    name_problem,
)

# what the fleet, the pipeline and the tests use of the accounts (part of it defined in the modules imported above)
__all__ = [
    "AccountsError",
    "Declared",
    "FLEET_LIST",
    "SHARD_EXTRACTOR",
    "check",
    "credentials_in",
    "generate",
    "is_credential_variable",
    "load_accounts",
    "main",
    "read_secrets",
    "secrets_path",
    "shard_env",
    "shard_of",
    "step_env",
    "write_account",
]


# ---------------------------------------------------------------------------------------------- the check
def check(project: Path, env: dict | None = None) -> list[str]:
    """Problems that make the accounts unsafe to run; empty when they may run. Never includes a secret value."""
    env = dict(os.environ if env is None else env)
    problems = []
    try:
        entries = read_fleet_list(project)
        if entries and (
            not (project / GENERATED).exists() or (project / GENERATED).read_text() != render_generated(entries)
        ):
            problems.append(
                f"{GENERATED} is not up to date with {FLEET_LIST}: run `python -m invoiz_ops.accounts generate` "
                "(make fleet-accounts)"
            )
        accounts = load_accounts(project)
        secrets = read_secrets(secrets_path(project, env))
    except (AccountsError, OSError, yaml.YAMLError) as exc:
        return [*problems, str(exc)]
    if not accounts:
        problems.append("no accounts: declare extractors that inherit from tap-invoiz (accounts/fleet.yml)")
    parent = next(
        (
            p
            for p in (read_yaml(project / "meltano.yml").get("plugins") or {}).get("extractors") or []
            if isinstance(p, dict) and p.get("name") == PARENT
        ),
        {},
    )
    for setting in CREDENTIALS:
        value = (parent.get("config") or {}).get(setting)
        if value not in (None, "") and not str(value).startswith("$"):
            problems.append(f"meltano.yml: tap-invoiz has a literal {setting}; secrets never go in YAML")
    by_account: dict[str, list[str]] = {}
    by_installation: dict[str, list[str]] = {}
    for acct in accounts:
        name = name_of_extractor(acct.extractor)
        if name is None:
            problems.append(
                f"{acct.source}: {acct.extractor} inherits from tap-invoiz but is not named {EXTRACTOR_PREFIX}<name>"
            )
        elif name_problem(name):
            problems.append(f"{acct.source}: {acct.extractor}: {name_problem(name)}")
        by_account.setdefault(acct.account, []).append(acct.extractor)
        own = acct.credential_variables()
        for setting, var in own.items():
            value = acct.config.get(setting)
            if value is None:
                problems.append(
                    f"{acct.source}: {acct.extractor} does not set {setting}: it would inherit "
                    f"tap-invoiz's; set `{setting}: ${var}`"
                )
            elif str(value) not in (f"${var}", f"${{{var}}}"):
                what = "a literal secret" if not str(value).startswith("$") else f"{value} (not its own variable)"
                problems.append(f"{acct.source}: {acct.extractor} {setting} is {what}; use `${var}`")
        values = credential_values(acct, env, secrets)
        missing = [var for var, value in values.items() if not value]
        if missing:
            problems.append(
                f"{acct.extractor}: no credentials in the environment or {secrets_path(project, env).name}: "
                + ", ".join(missing)
            )
        installation = values[own["installation_id"]]
        if installation:
            by_installation.setdefault(installation, []).append(acct.extractor)
    for account, extractors in by_account.items():
        if len(extractors) > 1:
            problems.append(f"account {account!r} is used by {', '.join(extractors)}: rows and state would mix")
    for extractors in by_installation.values():
        if len(extractors) > 1:
            problems.append(
                f"{', '.join(extractors)} share one invoiz installation: each installation must be exactly one account"
            )
    return problems


# ---------------------------------------------------------------------------------------------- the command line
def _add(project: Path, name: str) -> int:
    declared = {a.extractor: a.source for a in load_accounts(project)}
    if extractor_name(name) in declared:
        raise AccountsError(f"{extractor_name(name)} is declared already, in {declared[extractor_name(name)]}")
    path = write_account(name, project / ACCOUNTS_DIR)
    print(f"wrote {path.relative_to(project)}; set these in .env (chmod 600 .env):")
    for variable in credential_variables(name).values():
        print(f"  {variable}=...")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m invoiz_ops.accounts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--project", default=str(PROJECT_ROOT), help="Meltano project folder (default: this checkout)")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="write accounts/NAME.meltano.yml")
    add.add_argument("name")
    commands.add_parser("generate", help="write accounts/fleet.meltano.yml from accounts/fleet.yml")
    commands.add_parser("check", help="refuse accounts that are unsafe to run")
    commands.add_parser("list", help="every account extractor, its `account`, the file declaring it")
    args = parser.parse_args(argv)
    project = Path(args.project).resolve()
    try:
        if args.command == "add":
            return _add(project, args.name)
        if args.command == "generate":
            changed = generate(project)
            print(f"{GENERATED}: {'written' if changed else 'up to date'} ({len(read_fleet_list(project))} accounts)")
            return 0
        if args.command == "list":
            for acct in load_accounts(project):
                print(f"{acct.extractor}\taccount={acct.account}\t{acct.source}")
            return 0
    except (AccountsError, yaml.YAMLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = check(project)
    for problem in problems:
        print(f"refused: {problem}", file=sys.stderr)
    if not problems:
        print(f"accounts ok: {len(load_accounts(project))}, each with its own installation and credentials")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
