"""Dagster code location for a fleet of invoiz accounts (docs/FLEET.md).

A schema step first creates or alters the raw tables once (target-postgres' CREATE/ALTER TABLE is not safe in
parallel) and creates the pools of new accounts. Then one step per account: `meltano run --force
tap-invoiz--<name> target-postgres` (its own Meltano system dir, its own credentials
only, state in the shared system database; the steps: ops/invoiz_ops/fleet/load_steps.py). One marts step after all loads: `meltano run dbt-postgres:build`.
A failed account fails its own step (the run shows it failed) and the marts still run: each load step yields its
"done" output once the load has ended, then raises; the executor runs a step as soon as its inputs exist
(step_dependency_config.require_upstream_step_success: false). Dagster has no per-asset "run even if upstream
failed" rule, which is why this is an op job that reports materializations of per-account assets rather than a
job of @asset functions.

Executor (INVOIZ_FLEET_EXECUTOR): `multiprocess` (default, one machine, INVOIZ_FLEET_MAX_CONCURRENT steps at once) or
`celery` (dagster-celery: every step goes through the broker INVOIZ_FLEET_BROKER to whichever worker takes it,
ops/invoiz_ops/fleet/celery_worker.py). Each step records which worker ran it (metadata `worker`) and logs its result
through Dagster's event log, which is in PostgreSQL: the UI shows every worker's steps.

At most one step per account at a time, across runs: every account step is in its own pool (`invoiz-account-<name>`),
and the instance's pool limit is 1 (dagster.yaml: concurrency.pools.default_limit, written by ops/invoiz_ops/fleet/deploy.py).

No `from __future__ import annotations` here: Dagster inspects the `context` annotation.
"""

import os
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import yaml
from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetSpec,
    ConfigMapping,
    DagsterRunStatus,
    Definitions,
    Failure,
    Field,
    FreshnessPolicy,
    In,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    RunsFilter,
    ScheduleDefinition,
    job,
    multi_asset_check,
    multiprocess_executor,
    op,
)

from invoiz_ops import accounts as fleet_accounts
from invoiz_ops.fleet import load_steps, pool_wait, pools, runner, schema_step, warehouse

pool_wait.install()  # a run waiting for a pool slot sleeps instead of spinning a core (see the module)

ACCOUNT_GROUP = "invoiz_accounts"
MAX_CONCURRENT = int(os.environ.get("INVOIZ_FLEET_MAX_CONCURRENT") or 2)
# 0: one step per account (`meltano run tap-invoiz--<name> target-postgres`). N > 0: N shard steps, each syncing its
# accounts in one tap process (tap-invoiz-fleet) into one target: start-up is paid once per shard, not per account.
SHARDS = int(os.environ.get("INVOIZ_FLEET_SHARDS") or 0)
EXECUTOR = os.environ.get("INVOIZ_FLEET_EXECUTOR") or "multiprocess"


# Freshness per account (the UI's asset view): the last successful load older than this warns / fails.
FRESHNESS = FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=int(os.environ.get("INVOIZ_FLEET_STALE_MINUTES") or 60)),
    warn_window=timedelta(minutes=int(os.environ.get("INVOIZ_FLEET_LATE_MINUTES") or 30)),
)


@op(
    name="warehouse_schema",
    description="Creates or alters the raw tables for the tap's current schemas once, before the parallel loads "
    "(target-postgres' CREATE/ALTER TABLE is not safe in parallel); cheap when nothing changed. Also creates the "
    "pools of accounts added since the last cycle, before any load claims them. One at a time through PostgreSQL "
    "advisory locks, not a pool: the run's first pool claim must come after the pools exist (pools.py).",
    out={"done": Out(Nothing, description="the warehouse has every table and column: the loads may start")},
    tags={"invoiz/fleet": "schema"},
)
def warehouse_schema(context: OpExecutionContext):
    load_steps.hold_storage_connections(context)
    job_pools = sorted(set().union(*(node.definition.pools for node in context.job_def.nodes)))
    created = pools.ensure_pools(context.instance, job_pools)
    if created:
        context.log.info(f"created {len(created)} pools: {', '.join(created[:10])}")
    try:
        outcome = schema_step.ensure_warehouse_schema(dict(os.environ))
    except schema_step.SchemaStepError as exc:
        raise Failure(
            description=f"schema step: {exc.process} failed (exit {exc.result.returncode}): "
            f"{exc.result.first_error or 'see the log tail'}; no load was started",
            metadata=load_steps.failure_metadata(exc.result, {}),
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


MARTS_KEY = AssetKey(["invoiz", "marts"])
ROW_CHECK = "rows_match_invoiz"


def _row_check_evaluations(accounts: list) -> list[AssetCheckEvaluation]:
    """Per account: the live rows of each counted stream against invoiz's count at the account's latest load (a silent
    gap — rows missing or left over — fails the account's check)."""
    with closing(warehouse.connect()) as conn:
        gaps = warehouse.count_gaps(conn, [a.account for a in accounts])
    evaluations = []
    for acct in accounts:
        streams = gaps.get(acct.account)
        if not streams:
            passed, metadata, text = False, {}, "no completed load yet"
        else:
            passed = all(listed == live for listed, live in streams.values())
            metadata = {}
            for stream, (listed, live) in streams.items():
                metadata[f"{stream}_invoiz"] = listed
                metadata[f"{stream}_live"] = live
            text = ", ".join(f"{stream}: invoiz {listed}, live {live}" for stream, (listed, live) in streams.items())
        evaluations.append(
            AssetCheckEvaluation(
                asset_key=AssetKey(["invoiz", acct.name]),
                check_name=ROW_CHECK,
                passed=passed,
                metadata=metadata,
                severity=AssetCheckSeverity.ERROR,
                description=text,
            )
        )
    return evaluations


def _marts_op():
    @op(
        name="marts",
        description="per-account row checks, then meltano run dbt-postgres:build when a raw row or the dbt project "
        "changed since the last build; once per cycle after every account's load",
        ins={"loads": In(Nothing)},
        pool=pools.MARTS_POOL,
    )
    def marts(context: OpExecutionContext):
        load_steps.hold_storage_connections(context)
        evaluations = _row_check_evaluations(load_steps.current_accounts())
        for evaluation in evaluations:
            context.log_event(evaluation)
        gaps = [e.asset_key.path[-1] for e in evaluations if not e.passed]
        if gaps:
            context.log.warning(f"{len(gaps)} account(s) whose live rows differ from invoiz: {', '.join(gaps)}")
        with closing(warehouse.connect()) as conn:
            watermark = warehouse.raw_watermark(conn)
        code = warehouse.dbt_project_hash(runner.project_root())
        last = context.instance.get_latest_materialization_event(MARTS_KEY)
        last_meta = last.asset_materialization.metadata if last and last.asset_materialization else {}
        built_from = {k: getattr(last_meta.get(k), "value", None) for k in ("raw_watermark", "dbt_project")}
        if built_from == {"raw_watermark": watermark, "dbt_project": code}:
            # a no-change cycle: the marts are a function of the raw tables and the dbt project, both unchanged
            context.log.info("marts up to date: no raw row and no dbt file changed since the last build")
            context.log_event(AssetObservation(asset_key=MARTS_KEY, metadata={"up_to_date": True}))
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_INVOIZ")}
        result = runner.meltano(["run", "dbt-postgres:build"], env, step="marts", timeout=load_steps.STEP_TIMEOUT)
        metadata = {"seconds": result.seconds, "cpu_seconds": result.cpu_seconds, "worker": load_steps.worker_name()}
        if not result.ok:
            raise Failure(
                description=f"dbt build failed (exit {result.returncode}): {result.first_error or 'see the log tail'}",
                metadata={**metadata, **load_steps.failure_metadata(result, {})},
            )
        context.log_event(
            AssetMaterialization(
                asset_key=MARTS_KEY, metadata={**metadata, "raw_watermark": watermark, "dbt_project": code}
            )
        )

    return marts


def _no_cycle_pending(context) -> bool:
    """A tick launches no cycle while the previous one is still queued or running: a slow cycle delays the next one
    instead of piling runs up behind the pools (the next tick after it ends loads what changed meanwhile)."""
    pending = context.instance.get_runs_count(
        RunsFilter(
            job_name="fleet_cycle",
            statuses=[
                DagsterRunStatus.QUEUED,
                DagsterRunStatus.NOT_STARTED,
                DagsterRunStatus.STARTING,
                DagsterRunStatus.STARTED,
            ],
        )
    )
    return pending == 0


def _schedule_cron(project: Path) -> str:
    """INVOIZ_FLEET_CRON, else the cron of meltano.yml's schedule for the `sync` job (the cycle this job replaces)."""
    if os.environ.get("INVOIZ_FLEET_CRON"):
        return os.environ["INVOIZ_FLEET_CRON"]
    meltano = yaml.safe_load((project / "meltano.yml").read_text()) or {}
    for schedule in meltano.get("schedules") or []:
        if schedule.get("job") == "sync" and schedule.get("interval"):
            return str(schedule["interval"])
    return "*/15 * * * *"


def _executor():
    """multiprocess on one machine (default); celery: the steps on every worker that listens to the broker."""
    if EXECUTOR == "celery":
        from invoiz_ops.fleet import celery_worker

        return celery_worker.fleet_celery_executor.configured(celery_worker.executor_config())
    if EXECUTOR != "multiprocess":
        raise ValueError(f"INVOIZ_FLEET_EXECUTOR={EXECUTOR!r}: use multiprocess or celery")
    return multiprocess_executor.configured(
        {
            "max_concurrent": MAX_CONCURRENT,
            "step_dependency_config": {"require_upstream_step_success": False},
            # each step process is forked from one server per run that has imported Dagster and this code location,
            # instead of a fresh interpreter importing them again per step (spawn, the default): measured in
            # docs/FLEET.md ("Measured costs")
            "start_method": {"forkserver": {"preload_modules": ["invoiz_ops.fleet.definitions"]}},
        }
    )


def build_definitions(project: Path) -> Definitions:
    accounts = fleet_accounts.load_accounts(project)
    if SHARDS > 0:
        load_ops = [load_steps.shard_op(k, SHARDS) for k in range(1, SHARDS + 1)]
    else:
        load_ops = [load_steps.load_op(a) for a in accounts]
    marts = _marts_op()

    def backfill_config(config: dict) -> dict:
        """Checks the cycle's one setting, `full_refresh_accounts`, against the accounts declared now. The load steps
        read it from the run's config (load_steps.full_refresh_accounts), not from a config of their own: a step's
        config is checked against the steps of the code location's loaded copy, which lacks an account added since."""
        known = {a.name for a in load_steps.current_accounts()}
        unknown = [name for name in dict.fromkeys(config["full_refresh_accounts"]) if name not in known]
        if unknown:
            raise ValueError(f"full_refresh_accounts: no such account(s) {', '.join(unknown)}")
        return {}

    @job(
        name="fleet_cycle",
        description="Every account's incremental load (in parallel, one step per account), then the marts. "
        "Backfill: launch it with `full_refresh_accounts: [<name>, …]` — those accounts are loaded in full.",
        executor_def=_executor(),
        config=ConfigMapping(
            config_schema={
                "full_refresh_accounts": Field(
                    [str], default_value=[], description="accounts to load in full (every row) in this run"
                )
            },
            config_fn=backfill_config,
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
            freshness_policy=FRESHNESS,
        )
        for a in accounts
    ]
    specs.append(
        AssetSpec(
            MARTS_KEY,
            group_name="invoiz_marts",
            deps=[s.key for s in specs],
            description="dbt build of the marts over all accounts",
        )
    )
    schedule = ScheduleDefinition(
        name="fleet_every_cycle",
        job=fleet_cycle,
        cron_schedule=_schedule_cron(project),
        execution_timezone="UTC",
        should_execute=_no_cycle_pending,
    )
    checks = []
    if accounts:

        @multi_asset_check(
            specs=[
                AssetCheckSpec(
                    ROW_CHECK,
                    asset=AssetKey(["invoiz", a.name]),
                    description="live rows of invoices and contacts = invoiz's count at the latest load",
                )
                for a in accounts
            ],
            name="invoiz_rows_match",
        )
        def rows_match():
            """Also evaluated by every cycle's marts step; run alone from the UI to check now."""
            yield from (
                AssetCheckResult(
                    asset_key=e.asset_key,
                    check_name=e.check_name,
                    passed=e.passed,
                    metadata=e.metadata,
                    severity=e.severity,
                    description=e.description,
                )
                for e in _row_check_evaluations(accounts)
            )

        checks.append(rows_match)
    return Definitions(assets=specs, asset_checks=checks, jobs=[fleet_cycle], schedules=[schedule])


defs = build_definitions(runner.project_root())
