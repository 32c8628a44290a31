"""Declare invoiz accounts as Meltano extractors that share the tables: one file per account under accounts/.

Usage:
    python -m invoiz_ops.accounts add NAME     # writes accounts/NAME.meltano.yml (see accounts/README.md)
    python -m invoiz_ops.accounts list
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # ops/invoiz_ops/<module>.py → the checkout
ACCOUNTS_DIR = PROJECT_ROOT / "accounts"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
CREDENTIALS = ("api_key", "api_key_secret", "installation_id")


def extractor_name(account: str) -> str:
    return f"tap-invoiz--{account}"


def env_name(account: str, setting: str) -> str:
    """Meltano's own variable for a setting of the account's extractor, e.g. TAP_INVOIZ__ACME_API_KEY."""
    return f"{extractor_name(account)}_{setting}".upper().replace("-", "_")


def account_file_text(account: str) -> str:
    """The account's extractor: inherits tap-invoiz, its own `account`, credentials only from its own variables."""
    if not NAME_PATTERN.match(account):
        msg = f"account name {account!r}: use lower-case letters, digits and '-' (it becomes part of every key)"
        raise ValueError(msg)
    lines = [
        f"# invoiz account {account!r}: credentials come from {env_name(account, 'api_key')} etc. (environment or .env),",
        "# never from tap-invoiz's own TAP_INVOIZ_* variables. See accounts/README.md.",
        "plugins:",
        "  extractors:",
        f"  - name: {extractor_name(account)}",
        "    inherit_from: tap-invoiz",
        "    config:",
        f"      account: {account}",
        *(f"      {setting}: ${env_name(account, setting)}" for setting in CREDENTIALS),
    ]
    return "\n".join(lines) + "\n"


def write_account(account: str, folder: Path = ACCOUNTS_DIR) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{account}.meltano.yml"
    if path.exists():
        msg = f"{path.name} exists already"
        raise FileExistsError(msg)
    path.write_text(account_file_text(account), encoding="utf-8")
    return path


def declared_accounts(folder: Path = ACCOUNTS_DIR) -> list[str]:
    return sorted(p.name.removesuffix(".meltano.yml") for p in folder.glob("*.meltano.yml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m invoiz_ops.accounts", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="write accounts/NAME.meltano.yml")
    add.add_argument("name")
    commands.add_parser("list", help="the declared accounts")
    args = parser.parse_args(argv)
    if args.command == "add":
        try:
            path = write_account(args.name)
        except (ValueError, FileExistsError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {path.relative_to(PROJECT_ROOT)}; set these in .env (chmod 600 .env):")
        for setting in CREDENTIALS:
            print(f"  {env_name(args.name, setting)}=...")
        return 0
    for account in declared_accounts():
        print(f"{account}\t{extractor_name(account)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
