"""The fleet's load steps (Dagster ops): one per account (`meltano run --force tap-invoiz--<name> target-postgres`) or
one per shard (`meltano run --force --state-id-suffix <shard> tap-invoiz-fleet target-postgres`), and what a step
records: a materialization per loaded account (worker, records, seconds, CPU), or a Failure naming the account, the
failed process, its first error line and what was committed. The job around them: ops/invoiz_ops/fleet/definitions.py.

A failed load still yields its "done" output before it raises, so that the marts run after every load has ended.

No `from __future__ import annotations` here: Dagster inspects the `context` annotation.
"""

import os
import socket

from dagster import (
    AssetKey,
    AssetMaterialization,
    Failure,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    op,
)

from invoiz_ops import accounts as fleet_accounts
from invoiz_ops.fleet import backfill, pools, runner, warehouse

# A `meltano run` still going after this many seconds is stopped and its step fails (Celery: also the bound after which
# a step of a dead worker is handed to another one).
STEP_TIMEOUT = int(os.environ.get("INVOIZ_FLEET_STEP_TIMEOUT") or 3600)


def worker_name() -> str:
    """Who ran a step: INVOIZ_FLEET_WORKER (set by `invoiz_ops.fleet.deploy worker`) or the host name."""
    return os.environ.get("INVOIZ_FLEET_WORKER") or socket.gethostname()


def secrets() -> dict:
    return fleet_accounts.read_secrets(fleet_accounts.secrets_path(runner.project_root()))


def op_name(name: str) -> str:
    return "load_" + name.replace("-", "_")


def state_id(extractor: str, suffix: str = "") -> str:
    """Meltano's state id of `meltano run <extractor> target-postgres` (--state-id-suffix: shards)."""
    environment = os.environ.get("MELTANO_ENVIRONMENT") or "dev"
    return f"{environment}:{extractor}-to-target-postgres" + (f":{suffix}" if suffix else "")


def failure_metadata(result: runner.RunResult, commit_metadata: dict) -> dict:
    """What a red step shows: the failed process and its first error line (not Meltano's last traceback lines),
    what was committed before the failure, and the log tail for context. Secrets are masked by the runner."""
    return {
        "failed_process": result.failed_plugin or "meltano",
        "first_error": result.first_error,
        "exit_code": result.returncode,
        **{k: (MetadataValue.json(v) if isinstance(v, dict) else v) for k, v in commit_metadata.items()},
        "log_tail": MetadataValue.md(f"```\n{result.tail}\n```"),
    }


def hold_storage_connections(context: OpExecutionContext) -> None:
    """For the rest of this step's process, one PostgreSQL connection per Dagster storage instead of one per query.

    dagster-postgres connects anew for every query (SQLAlchemy's NullPool, so that idle processes hold no
    connection): two connections per materialization or check evaluation, and each is a new PostgreSQL backend. A
    shard step records a materialization per account, the marts step a check result per account: 1,000
    materializations took 4.4 CPU-s in the step and 10 CPU-s in PostgreSQL, against 2.6 and 0.7 with the connection
    kept (docs/FLEET.md, "Measured costs"). Dagster's own switch for a long-lived process (dagster-webserver's) does it;
    the connections end with the step's process. No statement timeout (0), as before."""
    context.instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=2)


def full_refresh_accounts(context: OpExecutionContext) -> set[str]:
    """The accounts this run loads in full: the cycle's setting `full_refresh_accounts` (definitions.py checks it)."""
    return set(context.run_config.get("full_refresh_accounts") or [])


def load_op(account: fleet_accounts.Declared):
    asset_key = AssetKey(["invoiz", account.name])

    @op(
        name=op_name(account.name),
        description=f"meltano run {account.extractor} target-postgres",
        ins={"schema": In(Nothing)},
        out={"done": Out(Nothing, description="the load has ended (successfully or not): the marts may run")},
        pool=pools.account_pool(account.name),
        tags={"invoiz/account": account.account},
    )
    def load(context: OpExecutionContext):
        hold_storage_connections(context)
        full_refresh = ["--full-refresh"] if account.name in full_refresh_accounts(context) else []
        try:
            env = fleet_accounts.step_env(account, dict(os.environ), secrets())
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
                env, [account.account], state_id(account.extractor), result.seconds
            )
            raise Failure(
                description=f"account {account.account}: {result.failed_plugin or 'meltano'} failed "
                f"(exit {result.returncode}): {result.first_error or 'no error line (see the log tail)'}; {committed}",
                metadata={**metadata, **failure_metadata(result, commit_metadata)},
            )

    return load


def current_accounts() -> list:
    """The fleet's accounts as the project declares them now (read when a step starts, not when the code location was
    loaded: accounts added to or removed from accounts/fleet.yml count from the next run on, without a reload)."""
    return fleet_accounts.load_accounts(runner.project_root())


def shard_op(index: int, count: int):
    label = pools.shard_label(index, count)

    @op(
        name=f"load_shard_{index}_of_{count}",
        description=f"meltano run tap-invoiz-fleet target-postgres for the accounts of shard {index} of {count} "
        "(sha256 of the extractor name mod N + 1), as accounts/ declares them when the step starts",
        ins={"schema": In(Nothing)},
        out={"done": Out(Nothing, description="the shard's loads have ended (successfully or not)")},
        pool=pools.shard_pool(label),
        tags={"invoiz/shard": label},
    )
    def load(context: OpExecutionContext):
        hold_storage_connections(context)
        shard = [a for a in current_accounts() if fleet_accounts.shard_of(a, count) == index]
        if not shard:
            context.log.info(f"{label}: no account in this shard")
            yield Output(None, "done")
            return
        try:
            env = fleet_accounts.shard_env(shard, dict(os.environ), secrets())
        except (fleet_accounts.AccountsError, OSError) as exc:
            yield Output(None, "done")
            raise Failure(description=f"{label} not started: {exc}") from None
        chosen = [a.name for a in shard if a.name in full_refresh_accounts(context)]
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
                env, [a.account for a in shard], state_id(fleet_accounts.SHARD_EXTRACTOR, label), result.seconds
            )
            raise Failure(
                description=f"{label}: every account failed ({', '.join(failed)}): {result.failed_plugin or 'meltano'}"
                f" failed (exit {result.returncode}): {result.first_error or 'no error line (see the log tail)'};"
                f" {committed}",
                metadata={**metadata, **failure_metadata(result, commit_metadata)},
            )

    return load
