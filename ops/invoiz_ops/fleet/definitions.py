"""Dagster code location for a fleet of invoiz accounts (docs/FLEET.md).

A schema step first creates or alters the raw tables once (target-postgres' CREATE/ALTER TABLE is not safe in
parallel) and creates the pools of new accounts. Then one step per account: `meltano run --force
tap-invoiz--<name> target-postgres` (its own Meltano system dir, its own credentials
only, state in the shared system database). One marts step after all loads: `meltano run dbt-postgres:build`.
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
import socket
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
    MetadataValue,
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
from invoiz_ops.fleet import backfill, pools, runner, schema_step, warehouse

ACCOUNT_GROUP = "invoiz_accounts"
MAX_CONCURRENT = int(os.environ.get("INVOIZ_FLEET_MAX_CONCURRENT") or 2)
# 0: one step per account (`meltano run tap-invoiz--<name> target-postgres`). N > 0: N shard steps, each syncing its
# accounts in one tap process (tap-invoiz-fleet) into one target: start-up is paid once per shard, not per account.
SHARDS = int(os.environ.get("INVOIZ_FLEET_SHARDS") or 0)
EXECUTOR = os.environ.get("INVOIZ_FLEET_EXECUTOR") or "multiprocess"
# A `meltano run` still going after this many seconds is stopped and its step fails (Celery: also the bound after which
# a step of a dead worker is handed to another one).
STEP_TIMEOUT = int(os.environ.get("INVOIZ_FLEET_STEP_TIMEOUT") or 3600)


# Freshness per account (the UI's asset view): the last successful load older than this warns / fails.
FRESHNESS = FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=int(os.environ.get("INVOIZ_FLEET_STALE_MINUTES") or 60)),
    warn_window=timedelta(minutes=int(os.environ.get("INVOIZ_FLEET_LATE_MINUTES") or 30)),
)


def worker_name() -> str:
    """Who ran a step: INVOIZ_FLEET_WORKER (set by `invoiz_ops.fleet.deploy worker`) or the host name."""
    return os.environ.get("INVOIZ_FLEET_WORKER") or socket.gethostname()


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


def _load_op(account: fleet_accounts.Declared):
    asset_key = AssetKey(["invoiz", account.name])

    @op(
        name=_op_name(account.name),
        description=f"meltano run {account.extractor} target-postgres",
        ins={"schema": In(Nothing)},
        out={"done": Out(Nothing, description="the load has ended (successfully or not): the marts may run")},
        pool=pools.account_pool(account.name),
        tags={"invoiz/account": account.account},
        config_schema={
            "full_refresh": Field(bool, default_value=False, description="backfill: meltano run --full-refresh")
        },
    )
    def load(context: OpExecutionContext):
        full_refresh = ["--full-refresh"] if context.op_config["full_refresh"] else []
        try:
            env = fleet_accounts.step_env(account, dict(os.environ), _secrets())
        except (fleet_accounts.AccountsError, OSError) as exc:  # e.g. a secrets file others can read
            yield Output(None, "done")
            raise Failure(description=f"{account.extractor} not started: {exc}") from None
        # --force: the pools keep one load per account; Meltano's own "already running" guard would refuse the
        # account for 5 minutes after a killed run (its job row keeps a fresh heartbeat), i.e. in the recovering cycle
        result = runner.meltano(
            ["run", "--force", *full_refresh, account.extractor, "target-postgres"],
            env,
            step=f"account-{account.name}",
            timeout=STEP_TIMEOUT,
        )
        metadata = {
            "account": account.account,
            "worker": worker_name(),
            "full_refresh": bool(full_refresh),
            "seconds": result.seconds,
            "cpu_seconds": result.cpu_seconds,
            **{k: v for k, v in result.summary.items() if k != "seconds"},
        }
        context.log.info(
            f"account {account.name} on {worker_name()}: {'loaded' if result.ok else 'FAILED'} in {result.seconds} s"
            f" ({result.cpu_seconds} CPU-s); " + ", ".join(f"{k} {v}" for k, v in result.summary.items())
        )
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


def current_accounts() -> list:
    """The fleet's accounts as the project declares them now (read when a step starts, not when the code location was
    loaded: accounts added to or removed from accounts/fleet.yml count from the next run on, without a reload)."""
    return fleet_accounts.load_accounts(runner.project_root())


def _shard_op(index: int, count: int):
    label = pools.shard_label(index, count)

    @op(
        name=f"load_shard_{index}_of_{count}",
        description=f"meltano run tap-invoiz-fleet target-postgres for the accounts of shard {index} of {count} "
        "(sha256 of the extractor name mod N + 1), as accounts/ declares them when the step starts",
        ins={"schema": In(Nothing)},
        out={"done": Out(Nothing, description="the shard's loads have ended (successfully or not)")},
        pool=pools.shard_pool(label),
        tags={"invoiz/shard": label},
        config_schema={
            "full_refresh_accounts": Field(
                [str], default_value=[], description="backfill: accounts of this shard to load in full"
            )
        },
    )
    def load(context: OpExecutionContext):
        shard = [a for a in current_accounts() if fleet_accounts.shard_of(a, count) == index]
        if not shard:
            context.log.info(f"{label}: no account in this shard")
            yield Output(None, "done")
            return
        try:
            env = fleet_accounts.shard_env(shard, dict(os.environ), _secrets())
        except (fleet_accounts.AccountsError, OSError) as exc:
            yield Output(None, "done")
            raise Failure(description=f"{label} not started: {exc}") from None
        chosen = [a.name for a in shard if a.name in set(context.op_config["full_refresh_accounts"])]
        if chosen:
            ok, what = backfill.reset_accounts(label, [a.account for a in shard if a.name in chosen], env)
            context.log.info(f"{label}: backfill of {', '.join(chosen)}: {what}")
            if not ok:
                yield Output(None, "done")
                raise Failure(description=f"{label} not started: the backfill of {', '.join(chosen)} failed: {what}")
        # the state of a shard lives under its own state id; changing the shard count starts new ones (full scans)
        result = runner.meltano(
            ["run", "--force", "--state-id-suffix", label, fleet_accounts.SHARD_EXTRACTOR, "target-postgres"],
            env,
            step=label,
            timeout=STEP_TIMEOUT,
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
                    "worker": worker_name(),
                    "full_refresh": acct.name in chosen,
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
            f"{label} on {worker_name()}: {len(shard) - len(failed)} of {len(shard)} accounts loaded in {result.seconds} s "
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
                errors = "; ".join(
                    f"{a.name}: {(result.accounts.get(a.account) or {}).get('error', 'no result')}"
                    for a in shard
                    if a.name in failed
                )
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
        evaluations = _row_check_evaluations(current_accounts())
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
        result = runner.meltano(["run", "dbt-postgres:build"], env, step="marts", timeout=STEP_TIMEOUT)
        metadata = {"seconds": result.seconds, "cpu_seconds": result.cpu_seconds, "worker": worker_name()}
        if not result.ok:
            raise Failure(
                description=f"dbt build failed (exit {result.returncode}): {result.first_error or 'see the log tail'}",
                metadata={**metadata, **_failure_metadata(result, {})},
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
        load_ops = [_shard_op(k, SHARDS) for k in range(1, SHARDS + 1)]
    else:
        load_ops = [_load_op(a) for a in accounts]
    marts = _marts_op()
    _POOLS[:] = pools.fleet_pools(accounts, SHARDS)

    def backfill_config(config: dict) -> dict:
        """The cycle's one setting, `full_refresh_accounts`, as the config of the steps that load those accounts."""
        chosen = list(dict.fromkeys(config["full_refresh_accounts"]))
        if not chosen:
            return {}
        now = current_accounts() if SHARDS > 0 else accounts  # one step per account: the steps of the loaded code
        known = {a.name for a in now}
        shard_label = {
            a.name: f"load_shard_{fleet_accounts.shard_of(a, SHARDS)}_of_{SHARDS}" for a in now if SHARDS > 0
        }
        unknown = [name for name in chosen if name not in known]
        if unknown:
            raise ValueError(
                f"full_refresh_accounts: no such account(s) {', '.join(unknown)}"
                + ("" if SHARDS > 0 else " (one step per account: a new account needs a code-location reload)")
            )
        if SHARDS > 0:
            by_step: dict[str, list[str]] = {}
            for name in chosen:
                by_step.setdefault(shard_label[name], []).append(name)
            return {"ops": {step: {"config": {"full_refresh_accounts": names}} for step, names in by_step.items()}}
        return {"ops": {_op_name(name): {"config": {"full_refresh": True}} for name in chosen}}

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
