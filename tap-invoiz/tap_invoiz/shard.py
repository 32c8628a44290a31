"""tap-invoiz-fleet: several invoiz accounts synced one after another in one process (a shard of a fleet).

Starting Meltano, the tap and the target costs several CPU-seconds per run, far more than an incremental sync of a
small account. This entry point runs :class:`~tap_invoiz.tap.TapInvoiz` once per account inside one process and one
Singer stream, so a shard of accounts pays that start-up once. Each account is synced exactly as a single run would
sync it: its own config, its own entry in the shared state (``stream_state["accounts"][account]``, where the tap
already keeps each account apart), the same records.

Config (Meltano extractor ``tap-invoiz-fleet``, inheriting tap-invoiz's settings):

* ``accounts``: a list (or its JSON text) of ``{"name": "acme", "account": "acme", <overridable settings>}`` or
  plain names; what an account is, its name rules and the settings it may override: :mod:`tap_invoiz.accounts`.
  Credentials are read from the account's own variables ``TAP_INVOIZ__<NAME>_API_KEY``, ``…_API_KEY_SECRET``,
  ``…_INSTALLATION_ID`` (as for an extractor ``tap-invoiz--<name>``), set on their own or packed into
  ``TAP_INVOIZ_FLEET_CREDENTIALS`` (a JSON object {variable: value}; the fleet's steps use it to keep Meltano's
  environment small); tap-invoiz's own credential settings are never used for an account. They are read once and
  removed from the process environment. A bad entry or a duplicate stops the run before anything is sent.
* every other tap-invoiz setting applies to all accounts unless an account entry overrides it.

An account that fails (bad credentials, invoiz down) is logged and skipped; the others still sync. The exit status
stays 0 (a non-zero exit makes Meltano stop the target, which could lose the other accounts' last batch): each
account's outcome is its result line (``tap-invoiz result {...}``, :mod:`tap_invoiz.results`), which orchestrators
read, and a human line ``fleet account 'acme': ok: sync done in …`` or ``fleet account 'acme': FAILED: <reason>``.

``--about`` and ``--discover`` are tap-invoiz's.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import time
from pathlib import Path

from tap_invoiz import results
from tap_invoiz.accounts import (
    CREDENTIALS,
    Account,
    AccountError,
    account_from_entry,
    credentials_in,
    duplicate_problems,
    is_credential_variable,
    parse_entries,
)
from tap_invoiz.shard_state import AccountWriter, ShardState
from tap_invoiz.singer_writer import FastSingerWriter
from tap_invoiz.tap import TapInvoiz

LOGGER = logging.getLogger("tap-invoiz-fleet")


class ShardTap(TapInvoiz):
    """Several invoiz accounts in one process (a shard of a fleet); each account's credentials come from its own
    variables."""

    # What answers --about and --discover: tap-invoiz's streams and catalog, but the shard's own config has no
    # credentials (they are per account), so requiring them logged "Config validation failed" on every discovery.

    name = "tap-invoiz-fleet"
    config_jsonschema = {
        **TapInvoiz.config_jsonschema,
        "required": [k for k in TapInvoiz.config_jsonschema.get("required", []) if k not in CREDENTIALS],
    }


def read_accounts(config: dict) -> list[Account]:
    """The ``accounts`` setting (a list, or its JSON text when Meltano passes it through a variable), checked as a
    whole: a bad entry or a duplicate stops the run before anything is sent."""
    accounts = [account_from_entry(entry) for entry in parse_entries(config.get("accounts"))]
    problems = duplicate_problems(accounts)
    if problems:
        raise AccountError("; ".join(problems))
    return accounts


def _read_configs(paths: list[str]) -> dict:
    config: dict = {}
    for path in paths:
        config.update(json.loads(Path(path).read_text()))
    return config


def sync_accounts(
    config: dict, catalog: dict | None, state: dict, env: dict, accounts: list[Account] | None = None
) -> tuple[dict, list[str]]:
    """Sync every account in turn; returns the final state and the names of the accounts that failed. Each account
    ends with its result line (tap_invoiz.results), the human line ``fleet account '<name>': ok|FAILED: …`` too.
    Each account syncs from its own entries of the shard's state; the shard writes the whole state seldom
    (:mod:`tap_invoiz.shard_state`), and once at the end."""
    accounts = read_accounts(config) if accounts is None else accounts
    shard = ShardState(state)
    failed = []
    for acct in accounts:
        name = acct.name
        account_cfg, missing = acct.tap_config(config, env)
        if missing:
            error = f"no credentials ({', '.join(missing)})"
            LOGGER.error("fleet account '%s': FAILED: %s", name, error)
            results.write_result(results.not_started(acct.account, error))
            failed.append(name)
            continue
        tap = None
        try:
            tap = TapInvoiz(
                config=account_cfg,
                catalog=copy.deepcopy(catalog) if catalog else None,
                state=shard.of_account(acct.account),
                validate_config=True,
                # its STATE messages go to the shard's state; what it emitted stays, also after a failure
                message_writer=AccountWriter(shard, acct.account),
            )
            tap.sync_all()
        except SystemExit as exc:
            if exc.code not in (0, None):
                reason = results.first_line(exc)  # the message itself, or "exit N" after an error logged above
                LOGGER.error("fleet account '%s': FAILED: %s", name, reason)
                failed.append(name)
                _report_unless_reported(tap, acct, exc)
        except Exception as exc:
            LOGGER.error("fleet account '%s': FAILED: %s: %s", name, type(exc).__name__, exc)
            failed.append(name)
            _report_unless_reported(tap, acct, exc)
        # a synced account's outcome is its result line and the tap's "sync done" line: no line of its own here
    if shard.changed:
        FastSingerWriter().write_message(shard.message())
    return shard.state, failed


def _report_unless_reported(tap: TapInvoiz | None, acct: Account, error: BaseException) -> None:
    """An account that failed before its sync began (e.g. invalid settings) has written no result line yet."""
    if tap is None or tap.last_result is None:
        results.write_result(results.not_started(acct.account, results.first_line(error) or "failed"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("--about", "--discover", "--version", "--help") for a in argv):
        return ShardTap.cli(argv, prog_name="tap-invoiz-fleet")  # type: ignore[no-any-return]
    parser = argparse.ArgumentParser(
        prog="tap-invoiz-fleet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", action="append", default=[], required=True)
    parser.add_argument("--state")
    parser.add_argument("--catalog")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s | %(levelname)-8s | %(name)-20s | %(message)s", stream=sys.stderr
    )
    config = _read_configs(args.config)
    catalog = json.loads(Path(args.catalog).read_text()) if args.catalog else None
    state = json.loads(Path(args.state).read_text() or "{}") if args.state else {}
    try:
        accounts = read_accounts(config)
        credentials = credentials_in(os.environ)
    except AccountError as exc:
        # nothing was sent yet: a plain-text last line naming the setting, as tap-invoiz does for bad settings
        raise SystemExit(f"setting {exc}") from None
    # read once, then out of the environment: requests scans the whole environment for proxy settings on every
    # request, and nothing this process starts needs them
    for variable in [k for k in os.environ if is_credential_variable(k)]:
        del os.environ[variable]
    started = time.monotonic()
    _, failed = sync_accounts(config, catalog, state, credentials, accounts)
    total = len(accounts)
    LOGGER.info(
        "fleet: %d accounts in %.1f s, %d failed%s",
        total,
        time.monotonic() - started,
        len(failed),
        f" ({', '.join(failed)})" if failed else "",
    )
    # Exit 0 even when accounts failed: Meltano stops the target when the extractor exits non-zero, and the target
    # could then drop the last batch of the accounts that did sync. Failures are the result lines above.
    return 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
