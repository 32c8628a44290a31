"""tap-invoiz-fleet: several invoiz accounts synced one after another in one process (a shard of a fleet).

Starting Meltano, the tap and the target costs several CPU-seconds per run, far more than an incremental sync of a
small account. This entry point runs :class:`~tap_invoiz.tap.TapInvoiz` once per account inside one process and one
Singer stream, so a shard of accounts pays that start-up once. Each account is synced exactly as a single run would
sync it: its own config, its own entry in the shared state (``stream_state["accounts"][account]``, where the tap
already keeps each account apart), the same records.

Config (Meltano extractor ``tap-invoiz-fleet``, inheriting tap-invoiz's settings):

* ``accounts``: a list of ``{"name": "acme", "account": "acme", <non-secret settings>}``. Credentials are read from
  the account's own variables ``TAP_INVOIZ__<NAME>_API_KEY``, ``…_API_KEY_SECRET``, ``…_INSTALLATION_ID`` (as for an
  extractor ``tap-invoiz--<name>``); tap-invoiz's own credential settings are never used for an account.
* every other tap-invoiz setting applies to all accounts unless an account entry overrides it.

An account that fails (bad credentials,
invoiz down) is logged and skipped; the others still sync. The exit status stays 0 (a non-zero exit makes Meltano
stop the target, which could lose the other accounts' last batch): read the result lines, one per account:
``fleet account 'acme': ok: sync done in …`` or ``fleet account 'acme': FAILED: <reason>``.

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

from tap_invoiz.tap import TapInvoiz

LOGGER = logging.getLogger("tap-invoiz-fleet")
CREDENTIALS = ("api_key", "api_key_secret", "installation_id")
OVERRIDABLE = (
    "start_date",
    "page_size",
    "max_concurrency",
    "request_timeout",
    "max_retries",
    "api_url",
    "app_url",
    "user_agent",
)


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


def credential_var(name: str, setting: str) -> str:
    return f"TAP_INVOIZ__{name.upper().replace('-', '_')}_{setting.upper()}"


def account_config(base: dict, entry: dict, env: dict) -> tuple[dict, list[str]]:
    """The config of one account and the names of its missing credential variables."""
    name = str(entry["name"])
    config = {k: v for k, v in base.items() if k not in (*CREDENTIALS, "accounts")}
    config.update({k: entry[k] for k in OVERRIDABLE if entry.get(k) not in (None, "")})
    config["account"] = str(entry.get("account") or name)
    missing = []
    for setting in CREDENTIALS:
        value = env.get(credential_var(name, setting))
        if value:
            config[setting] = value
        else:
            missing.append(credential_var(name, setting))
    return config, missing


def _read_configs(paths: list[str]) -> dict:
    config: dict = {}
    for path in paths:
        config.update(json.loads(Path(path).read_text()))
    return config


def sync_accounts(config: dict, catalog: dict | None, state: dict, env: dict) -> tuple[dict, list[str]]:
    """Sync every account in turn; returns the final state and the names of the accounts that failed."""
    entries = config.get("accounts") or []
    if isinstance(entries, str):
        entries = json.loads(entries)
    failed = []
    for entry in entries:
        if isinstance(entry, str):
            entry = {"name": entry}
        name = entry["name"]
        account_cfg, missing = account_config(config, entry, env)
        if missing:
            LOGGER.error("fleet account '%s': FAILED: no credentials (%s)", name, ", ".join(missing))
            failed.append(name)
            continue
        started = time.monotonic()
        tap = None
        try:
            tap = TapInvoiz(
                config=account_cfg,
                catalog=copy.deepcopy(catalog) if catalog else None,
                state=copy.deepcopy(state),
                validate_config=True,
            )
            tap.sync_all()
        except SystemExit as exc:
            if exc.code not in (0, None):
                LOGGER.error("fleet account '%s': FAILED: exit %s (see the error above)", name, exc.code)
                failed.append(name)
        except Exception as exc:  # noqa: BLE001 - one account's failure must not stop the shard
            LOGGER.error("fleet account '%s': FAILED: %s: %s", name, type(exc).__name__, exc)  # noqa: TRY400
            failed.append(name)
        else:
            LOGGER.info("fleet account '%s': ok: %s", name, tap.sync_summary(time.monotonic() - started))
        if tap is not None:
            # what was emitted (STATE follows the records it covers) stays, also after a failure
            state = copy.deepcopy(tap.state)
    return state, failed


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
    started = time.monotonic()
    _, failed = sync_accounts(config, catalog, state, dict(os.environ))
    total = len(config.get("accounts") or [])
    LOGGER.info(
        "fleet: %d accounts in %.1f s, %d failed%s",
        total,
        time.monotonic() - started,
        len(failed),
        f" ({', '.join(failed)})" if failed else "",
    )
    # Exit 0 even when accounts failed: Meltano stops the target when the extractor exits non-zero, and the target
    # could then drop the last batch of the accounts that did sync. Failures are the FAILED lines above.
    return 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
