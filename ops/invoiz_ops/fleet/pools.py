"""The fleet's Dagster pools (one load per account, shard, schema step or marts at a time), created before any claim.

Dagster creates a pool the first time a step claims it; two runs claiming a new pool at once (a fresh deploy, an
account just added) can fail one whole run with ``UniqueViolation … concurrency_limits_concurrency_key_key``. So the
pools exist first: ``invoiz_ops.fleet.deploy deploy`` creates every pool of the fleet (this module, run in the
Dagster virtualenv), and each cycle's first step (``warehouse_schema``, itself one at a time) creates the pools of
accounts added since. A pool created here follows the instance's default limit (``concurrency.pools.default_limit``).

    python -m invoiz_ops.fleet.pools     # DAGSTER_HOME, INVOIZ_FLEET_PROJECT and INVOIZ_FLEET_SHARDS from the environment
"""

from __future__ import annotations

import os
import sys

from invoiz_ops import accounts as fleet_accounts
from invoiz_ops.fleet import runner

SCHEMA_POOL = "invoiz-schema"
MARTS_POOL = "invoiz-marts"


def account_pool(name: str) -> str:
    return f"invoiz-account-{name}"


def shard_label(index: int, count: int) -> str:
    return f"shard-{index}-of-{count}"


def shard_pool(label: str) -> str:
    return f"invoiz-{label}"


def fleet_pools(accounts: list, shards: int) -> list[str]:
    """Every pool a cycle's steps claim, for these accounts in this mode (shards = 0: one step per account)."""
    if shards > 0:
        # every shard step exists, empty or not: accounts join a shard when its step starts (definitions.py)
        loads = [shard_pool(shard_label(k, shards)) for k in range(1, shards + 1)]
    else:
        loads = [account_pool(a.name) for a in accounts]
    return [SCHEMA_POOL, *loads, MARTS_POOL]


def ensure_pools(instance, keys: list[str]) -> list[str]:
    """Create the pools among ``keys`` that do not exist yet, one after another; returns the created ones."""
    storage = instance.event_log_storage
    existing = storage.get_concurrency_keys()
    created = []
    for key in keys:
        if key not in existing:
            storage.initialize_concurrency_limit_to_default(key)
            created.append(key)
    return created


def main() -> int:
    from dagster import DagsterInstance

    accounts = fleet_accounts.load_accounts(runner.project_root())
    shards = int(os.environ.get("INVOIZ_FLEET_SHARDS") or 0)
    with DagsterInstance.get() as instance:
        created = ensure_pools(instance, fleet_pools(accounts, shards))
    print(
        f"pools: {len(created)} created"
        + (f" ({', '.join(created[:5])}{', …' if len(created) > 5 else ''})" if created else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
