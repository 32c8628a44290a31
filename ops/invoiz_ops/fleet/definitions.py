"""Dagster code location for a fleet of invoiz accounts (docs/FLEET.md).

One step per account: `meltano run --force tap-invoiz--<name> target-postgres` (its own Meltano system dir, its own
credentials only, state in the shared system database). One marts step after all loads: `meltano run dbt-postgres:build`.
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

from invoiz_ops.fleet import accounts as fleet_accounts
from invoiz_ops.fleet import pools, runner, schema_step, warehouse

ACCOUNT_GROUP = "invoiz_accounts"
MAX_CONCURRENT = int(os.environ.get("INVOIZ_FLEET_MAX_CONCURRENT") or 2)
# 0: one step per account (`meltano run tap-invoiz--<name> target-postgres`). N > 0: N shard steps, each syncing its
# accounts in one tap process (tap-invoiz-fleet) into one target: start-up is paid once per shard, not per account.
SHARDS = int(os.environ.get("INVOIZ_FLEET_SHARDS") or 0)


def _secrets() -> dict:
    return fleet_accounts.read_secrets(fleet_accounts.secrets_path(runner.project_root()))


def _op_name(name: str) -> str:
    return "load_" + name.replace("-", "_")


def _state_id(extractor: str, suffix: str = "") -> str:
    """Meltano's state id of `meltano run <extractor> target-postgres` (--state-id-suffix: shards)."""
    environment = os.environ.get("MELTANO_ENVIRONMENT") or "dev"
    return f"{environment}:{extractor}-to-target-postgres" + (f":{suffix}" if suffix else "")


def _failure_metadata(result: runner.RunResult, commit_metadata: dict) -> dict:
    """What a red step shows: the failed process and its first error line (not Meltano's last traceback lines),
    what was committed before the failure, and the log tail for context. Secrets are masked by the runner."""
    return {
        "failed_process": result.failed_plugin or "meltano",
        "first_error": result.first_error,
        "exit_code": result.returncode,
        **{k: (MetadataValue.json(v) if isinstance(v, dict) else v) for k, v in commit_metadata.items()},
        "log_tail": MetadataValue.md(f"```\n{result.tail}\n```"),
    }


@op(
    name="warehouse_schema",
    description="Creates or alters the raw tables for the tap's current schemas once, before the parallel loads "
    "(target-postgres' CREATE/ALTER TABLE is not safe in parallel); cheap when nothing changed. Also creates the "
    "pools of accounts added since the last cycle, before any load claims them.",
    out={"done": Out(Nothing, description="the warehouse has every table and column: the loads may start")},
    pool=pools.SCHEMA_POOL,
    tags={"invoiz/fleet": "schema"},
)
def warehouse_schema(context: OpExecutionContext):
    created = pools.ensure_pools(context.instance, _POOLS)
    if created:
        context.log.info(f"created {len(created)} pools: {', '.join(created[:10])}")
    try:
        outcome = schema_step.ensure_warehouse_schema(dict(os.environ))
    except schema_step.SchemaStepError as exc:
        raise Failure(
            description=f"schema step: {exc.process} failed (exit {exc.result.returncode}): "
            f"{exc.result.first_error or 'see the log tail'}; no load was started",
            metadata=_failure_metadata(exc.result, {}),
        ) from None
    yield Output(
        None,
        "done",
        metadata={
            "applied": outcome.applied,
            "streams": ", ".join(outcome.streams),
            "fingerprint": outcome.fingerprint[:16],
            "seconds": outcome.seconds,
            "cpu_seconds": outcome.cpu_seconds,
        },
    )


_POOLS: list[str] = []  # every pool of the loaded definitions (set by build_definitions)


def _load_op(account: fleet_accounts.Account):
    asset_key = AssetKey(["invoiz", account.name])

    @op(
        name=_op_name(account.name),
        description=f"meltano run {account.extractor} target-postgres",
        ins={"schema": In(Nothing)},
        out={"done": Out(Nothing, description="the load has ended (successfully or not): the marts may run")},
        pool=pools.account_pool(account.name),
        tags={"invoiz/account": account.account},
    )
    def load(context: OpExecutionContext):
        try:
            env = fleet_accounts.step_env(account, dict(os.environ), _secrets())
        except (fleet_accounts.FleetError, OSError) as exc:  # e.g. a secrets file others can read
            yield Output(None, "done")
            raise Failure(description=f"{account.extractor} not started: {exc}") from None
        # --force: the pools keep one load per account; Meltano's own "already running" guard would refuse the
        # account for 5 minutes after a killed run (its job row keeps a fresh heartbeat), i.e. in the recovering cycle
        result = runner.meltano(
            ["run", "--force", account.extractor, "target-postgres"], env, step=f"account-{account.name}"
        )
        metadata = {
            "account": account.account,
            "seconds": result.seconds,
            "cpu_seconds": result.cpu_seconds,
            **{k: v for k, v in result.summary.items() if k != "seconds"},
        }
        if result.ok:
            context.log_event(AssetMaterialization(asset_key=asset_key, metadata=metadata))
        yield Output(None, "done")
        if not result.ok:
            committed, commit_metadata = warehouse.describe_commit(
                env, [account.account], _state_id(account.extractor), result.seconds
            )
            raise Failure(
                description=f"account {account.account}: {result.failed_plugin or 'meltano'} failed "
                f"(exit {result.returncode}): {result.first_error or 'no error line (see the log tail)'}; {committed}",
                metadata={**metadata, **_failure_metadata(result, commit_metadata)},
            )

    return load


def _shard_op(index: int, count: int, shard: list):
    label = pools.shard_label(index, count)

    @op(
        name=f"load_shard_{index}_of_{count}",
        description=f"meltano run tap-invoiz-fleet target-postgres for {len(shard)} accounts: "
        + ", ".join(a.name for a in shard),
        ins={"schema": In(Nothing)},
        out={"done": Out(Nothing, description="the shard's loads have ended (successfully or not)")},
        pool=pools.shard_pool(label),
        tags={"invoiz/shard": label},
    )
    def load(context: OpExecutionContext):
        try:
            env = fleet_accounts.shard_env(shard, dict(os.environ), _secrets())
        except (fleet_accounts.FleetError, OSError) as exc:
            yield Output(None, "done")
            raise Failure(description=f"{label} not started: {exc}") from None
        # the state of a shard lives under its own state id; changing the shard count starts new ones (full scans)
        result = runner.meltano(
            ["run", "--force", "--state-id-suffix", label, fleet_accounts.SHARD_EXTRACTOR, "target-postgres"],
            env,
            step=label,
        )
        # tap-invoiz-fleet exits 0 when single accounts fail (FAILED lines); a failed run is the target or Meltano,
        # and then nothing is known to be committed
        explained = result.ok
        failed = []
        for acct in shard:
            outcome = result.accounts.get(acct.name)
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
            f"({result.cpu_seconds} CPU-s)"
        )
        yield Output(None, "done")
        if failed or not result.ok:
            metadata = {
                "failed_accounts": ", ".join(failed),
                "seconds": result.seconds,
                "cpu_seconds": result.cpu_seconds,
            }
            if result.ok:  # single accounts failed in the tap; the target committed the others
                errors = "; ".join(f"{n}: {(result.accounts.get(n) or {}).get('error', 'no result')}" for n in failed)
                raise Failure(
                    description=f"{label}: {len(failed)} of {len(shard)} accounts failed: {errors}; the other "
                    "accounts' rows and state are committed",
                    metadata={**metadata, "log_tail": MetadataValue.md(f"```\n{result.tail}\n```")},
                )
            committed, commit_metadata = warehouse.describe_commit(
                env, [a.account for a in shard], _state_id(fleet_accounts.SHARD_EXTRACTOR, label), result.seconds
            )
            raise Failure(
                description=f"{label}: every account failed ({', '.join(failed)}): {result.failed_plugin or 'meltano'}"
                f" failed (exit {result.returncode}): {result.first_error or 'no error line (see the log tail)'};"
                f" {committed}",
                metadata={**metadata, **_failure_metadata(result, commit_metadata)},
            )

    return load


@op(
    name="marts",
    description="meltano run dbt-postgres:build, once per cycle after every account's load",
    ins={"loads": In(Nothing)},
    pool=pools.MARTS_POOL,
)
def marts(context: OpExecutionContext):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_INVOIZ")}
    result = runner.meltano(["run", "dbt-postgres:build"], env, step="marts")
    metadata = {"seconds": result.seconds, "cpu_seconds": result.cpu_seconds}
    if not result.ok:
        raise Failure(
            description=f"dbt build failed (exit {result.returncode}): {result.first_error or 'see the log tail'}",
            metadata={**metadata, **_failure_metadata(result, {})},
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
    _POOLS[:] = pools.fleet_pools(accounts, SHARDS)

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
        schema_ready = warehouse_schema()
        marts(loads=[load(schema=schema_ready) for load in load_ops])

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
