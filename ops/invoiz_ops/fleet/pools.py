"""The fleet's Dagster pools (one load per account or shard, and one marts build, at a time), created before any claim.

Dagster 1.13 creates a pool itself when a step claims one it does not know, and that creation fails a whole run on
PostgreSQL when the pool appears meanwhile: its insert collides (``UniqueViolation …
concurrency_limits_concurrency_key_key``) and its fallback runs in the aborted transaction. Two ways to get there:
two runs claiming a new pool at once (a fresh deploy, an account just added), and a run that read the instance's
pools at its first claim, before another step created the pool it claims next — a run reads them once, at its first
claim. So the pools exist first: ``invoiz_ops.fleet.deploy deploy`` creates every pool of the fleet (this module, run
in the Dagster virtualenv), and each cycle's first step (``warehouse_schema``) creates the pools of its job (accounts
added since, one step per account) before any claim of its run: that step claims no pool itself. Creation holds an
advisory lock, so that two processes never create the same pool at once. A pool created here follows the instance's
default limit (``concurrency.pools.default_limit``).

    python -m invoiz_ops.fleet.pools     # DAGSTER_HOME, INVOIZ_FLEET_PROJECT and INVOIZ_FLEET_SHARDS from the environment
"""

from __future__ import annotations

import os
import sys

from invoiz_ops import accounts as fleet_accounts
from invoiz_ops.fleet import runner, warehouse

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
    return [*loads, MARTS_POOL]


def ensure_pools(instance, keys: list[str]) -> list[str]:
    """Create the pools among ``keys`` that do not exist yet, one process at a time; returns the created ones."""
    storage = instance.event_log_storage
    if set(keys) <= storage.get_concurrency_keys():
        return []
    with warehouse.advisory_lock(warehouse.POOLS_LOCK_KEY, dict(os.environ)):
        existing = storage.get_concurrency_keys()  # again: another process may have created some while we waited
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
