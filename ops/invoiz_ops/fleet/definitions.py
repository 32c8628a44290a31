"""Dagster code location for a fleet of invoiz accounts (docs/FLEET.md).

One step per account: `meltano run tap-invoiz--<name> target-postgres` (its own Meltano system dir, its own credentials
only, state in the shared system database). One marts step after all loads: `meltano run dbt-postgres:build`.
A failed account fails its own step (the run shows it failed) and the marts still run: each load step yields its
"done" output once the load has ended, then raises; the executor runs a step as soon as its inputs exist
(step_dependency_config.require_upstream_step_success: false). Dagster has no per-asset "run even if upstream
failed" rule, which is why this is an op job that reports materializations of per-account assets rather than a
job of @asset functions.

At most one step per account at a time, across runs: every account step is in its own pool (`invoiz-account-<name>`),
and the instance's pool limit is 1 (dagster.yaml: concurrency.pools.default_limit, written by ops/invoiz_ops/fleet/deploy.py).

No `from __future__ import annotations` here: Dagster inspects the `context` annotation.
"""

import os
from pathlib import Path

import yaml
from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    Definitions,
    Failure,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    ScheduleDefinition,
    job,
    multiprocess_executor,
    op,
)

from invoiz_ops import accounts as fleet_accounts
from invoiz_ops.fleet import runner

ACCOUNT_GROUP = "invoiz_accounts"
MAX_CONCURRENT = int(os.environ.get("INVOIZ_FLEET_MAX_CONCURRENT") or 2)
# 0: one step per account (`meltano run tap-invoiz--<name> target-postgres`). N > 0: N shard steps, each syncing its
# accounts in one tap process (tap-invoiz-fleet) into one target: start-up is paid once per shard, not per account.
SHARDS = int(os.environ.get("INVOIZ_FLEET_SHARDS") or 0)


def _secrets() -> dict:
    return fleet_accounts.read_secrets(fleet_accounts.secrets_path(runner.project_root()))


def _op_name(name: str) -> str:
    return "load_" + name.replace("-", "_")


def _load_op(account: fleet_accounts.Declared):
    asset_key = AssetKey(["invoiz", account.name])

    @op(
        name=_op_name(account.name),
        description=f"meltano run {account.extractor} target-postgres",
        out={"done": Out(Nothing, description="the load has ended (successfully or not): the marts may run")},
        pool=f"invoiz-account-{account.name}",
        tags={"invoiz/account": account.account},
    )
    def load(context: OpExecutionContext):
        try:
            env = fleet_accounts.step_env(account, dict(os.environ), _secrets())
        except (fleet_accounts.AccountsError, OSError) as exc:  # e.g. a secrets file others can read
            yield Output(None, "done")
            raise Failure(description=f"{account.extractor} not started: {exc}") from None
        result = runner.meltano(["run", account.extractor, "target-postgres"], env, step=f"account-{account.name}")
        metadata = {
            "account": account.account,
            "seconds": result.seconds,
            "cpu_seconds": result.cpu_seconds,
            "retried": result.retried,
            **{k: v for k, v in result.summary.items() if k != "seconds"},
        }
        if result.ok:
            context.log_event(AssetMaterialization(asset_key=asset_key, metadata=metadata))
        yield Output(None, "done")
        if not result.ok:
            raise Failure(
                description=f"{account.extractor} failed (exit {result.returncode}); its rows and state are unchanged",
                metadata={**metadata, "log_tail": MetadataValue.md(f"```\n{result.tail}\n```")},
            )

    return load


def _shard_op(index: int, count: int, shard: list):
    label = f"shard-{index}-of-{count}"

    @op(
        name=f"load_shard_{index}_of_{count}",
        description=f"meltano run tap-invoiz-fleet target-postgres for {len(shard)} accounts: "
        + ", ".join(a.name for a in shard),
        out={"done": Out(Nothing, description="the shard's loads have ended (successfully or not)")},
        pool=f"invoiz-{label}",
        tags={"invoiz/shard": label},
    )
    def load(context: OpExecutionContext):
        try:
            env = fleet_accounts.shard_env(shard, dict(os.environ), _secrets())
        except (fleet_accounts.AccountsError, OSError) as exc:
            yield Output(None, "done")
            raise Failure(description=f"{label} not started: {exc}") from None
        # the state of a shard lives under its own state id; changing the shard count starts new ones (full scans)
        result = runner.meltano(
            ["run", "--state-id-suffix", label, fleet_accounts.SHARD_EXTRACTOR, "target-postgres"], env, step=label
        )
        # tap-invoiz-fleet exits 0 when single accounts fail (FAILED lines); a failed run is the target or Meltano,
        # and then nothing is known to be committed
        explained = result.ok
        failed = []
        for acct in shard:
            outcome = result.accounts.get(acct.account)  # the tap's result lines, by `account`
            if outcome and outcome["ok"] and explained:
                metadata = {
                    "account": acct.account,
                    "shard": label,
                    "shard_accounts": len(shard),
                    "shard_seconds": result.seconds,
                    "shard_cpu_seconds": result.cpu_seconds,
                    **{k: v for k, v in outcome.items() if k not in ("ok", "error")},
                }
                context.log_event(AssetMaterialization(asset_key=AssetKey(["invoiz", acct.name]), metadata=metadata))
            else:
                failed.append(acct.name)
                context.log.error(f"account {acct.name}: " + (outcome or {}).get("error", "no result (see the log)"))
        context.log.info(
            f"{label}: {len(shard) - len(failed)} of {len(shard)} accounts loaded in {result.seconds} s "
            f"({result.cpu_seconds} CPU-s){', after a second try' if result.retried else ''}"
        )
        yield Output(None, "done")
        if failed or not result.ok:
            raise Failure(
                description=f"{label}: {len(failed)} of {len(shard)} accounts failed: {', '.join(failed) or '-'}"
                f" (meltano exit {result.returncode}); the other accounts' rows and state are committed",
                metadata={
                    "failed_accounts": ", ".join(failed),
                    "seconds": result.seconds,
                    "cpu_seconds": result.cpu_seconds,
                    "log_tail": MetadataValue.md(f"```\n{result.tail}\n```"),
                },
            )

    return load


@op(
    name="marts",
    description="meltano run dbt-postgres:build, once per cycle after every account's load",
    ins={"loads": In(Nothing)},
    pool="invoiz-marts",
)
def marts(context: OpExecutionContext):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_INVOIZ")}
    result = runner.meltano(["run", "dbt-postgres:build"], env, step="marts")
    metadata = {"seconds": result.seconds, "cpu_seconds": result.cpu_seconds}
    if not result.ok:
        raise Failure(
            description=f"dbt build failed (exit {result.returncode})",
            metadata={**metadata, "log_tail": MetadataValue.md(f"```\n{result.tail}\n```")},
        )
    context.log_event(AssetMaterialization(asset_key=AssetKey(["invoiz", "marts"]), metadata=metadata))


def _schedule_cron(project: Path) -> str:
    """The cron of meltano.yml's schedule for the `sync` job (the cycle this job replaces)."""
    meltano = yaml.safe_load((project / "meltano.yml").read_text()) or {}
    for schedule in meltano.get("schedules") or []:
        if schedule.get("job") == "sync" and schedule.get("interval"):
            return str(schedule["interval"])
    return "*/15 * * * *"


def build_definitions(project: Path) -> Definitions:
    accounts = fleet_accounts.load_accounts(project)
    if SHARDS > 0:
        shards = {k: [a for a in accounts if fleet_accounts.shard_of(a, SHARDS) == k] for k in range(1, SHARDS + 1)}
        load_ops = [_shard_op(k, SHARDS, members) for k, members in shards.items() if members]
    else:
        load_ops = [_load_op(a) for a in accounts]

    @job(
        name="fleet_cycle",
        description="Every account's incremental load (in parallel, one step per account), then the marts.",
        executor_def=multiprocess_executor.configured(
            {
                "max_concurrent": MAX_CONCURRENT,
                "step_dependency_config": {"require_upstream_step_success": False},
            }
        ),
        tags={"invoiz/fleet": "cycle"},
    )
    def fleet_cycle():
        marts(loads=[load() for load in load_ops])

    specs = [
        AssetSpec(
            AssetKey(["invoiz", a.name]),
            group_name=ACCOUNT_GROUP,
            description=f"raw_invoiz rows of account {a.account!r} ({a.extractor})",
        )
        for a in accounts
    ]
    specs.append(
        AssetSpec(
            AssetKey(["invoiz", "marts"]),
            group_name="invoiz_marts",
            deps=[s.key for s in specs],
            description="dbt build of the marts over all accounts",
        )
    )
    schedule = ScheduleDefinition(
        name="fleet_every_cycle", job=fleet_cycle, cron_schedule=_schedule_cron(project), execution_timezone="UTC"
    )
    return Definitions(assets=specs, jobs=[fleet_cycle], schedules=[schedule])


defs = build_definitions(runner.project_root())
