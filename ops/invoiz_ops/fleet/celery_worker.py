"""The fleet's steps on several machines: Dagster's ``celery_executor`` (dagster-celery) and its workers.

The run (wherever Dagster launches it) puts every step on the broker; any worker that shares the databases and the
broker takes it (docs/FLEET.md, "Several machines"). A worker is started with

    celery -A invoiz_ops.fleet.celery_worker worker --hostname NAME@%h --concurrency N

(``python -m invoiz_ops.fleet.deploy worker`` does it with the fleet's environment). The executor and the workers read
the same settings from the environment: ``INVOIZ_FLEET_BROKER`` (the broker's URL, also the result backend),
``INVOIZ_FLEET_STEP_TIMEOUT`` (seconds a load may take) and ``INVOIZ_FLEET_VISIBILITY_TIMEOUT`` (seconds after which
a step taken by a dead worker goes to another one; default: the step timeout + a quarter).

A worker that dies (kill -9, a lost machine) takes no step with it: a step's message is acknowledged only when the
step has ended (``task_acks_late``), so the broker hands an unfinished step to another worker once the visibility
timeout has passed. That timeout must be longer than the longest load (by default it is longer than the step timeout,
at which each `meltano run` is stopped), so a step that is still running on a live worker is never handed out twice. Loads are idempotent (state saved only
after the target has committed, rows upserted on their key), so a step begun on the dead worker and run again on
another one loses and duplicates nothing.

Standard library + Dagster + Celery: imported by the code location and by the workers (.venv-dagster).
"""

import os

from dagster import Field, Noneable, Permissive, StringSource, executor, multiple_process_executor_requirements
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster_celery.core_execution_loop import core_celery_execution_loop
from dagster_celery.executor import CeleryExecutor, _submit_task
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

DEFAULT_STEP_TIMEOUT = 3600


def step_timeout() -> int:
    return int(os.environ.get("INVOIZ_FLEET_STEP_TIMEOUT") or DEFAULT_STEP_TIMEOUT)


def broker_url() -> str:
    url = os.environ.get("INVOIZ_FLEET_BROKER")
    if not url:
        raise RuntimeError(
            "INVOIZ_FLEET_BROKER is not set: the Celery broker's URL (python -m invoiz_ops.fleet.deploy deploy "
            "--executor celery starts an embedded one)"
        )
    return url


def visibility_timeout(timeout: int | None = None) -> int:
    """Seconds after which a step taken by a worker that never finished it (it died) goes back to the queue.

    It must be longer than the longest load: a step still running on a live worker when it passes is handed out a
    second time. INVOIZ_FLEET_VISIBILITY_TIMEOUT sets it (an operator who knows the longest load gets a dead worker's
    steps back sooner); the default is longer than a step may run (its `meltano run` is stopped at the step timeout;
    start-up and bookkeeping come on top)."""
    if os.environ.get("INVOIZ_FLEET_VISIBILITY_TIMEOUT"):
        return int(os.environ["INVOIZ_FLEET_VISIBILITY_TIMEOUT"])
    timeout = timeout or step_timeout()
    return timeout + max(15, timeout // 4)


def restore_interval(visibility: int) -> int:
    """Seconds between a worker's sweeps for steps whose visibility timeout has passed. kombu's default sweeps every
    10 s but scans only every 10th time (≈ 100 s), which would add up to 100 s to every hand-over; one scan (a ZRANGE on
    the broker's index of unacknowledged steps) every tenth of the visibility timeout, at most every 10 s, is cheap."""
    return max(1, min(10, visibility // 10))


def celery_settings(timeout: int | None = None) -> dict:
    """Celery settings shared by the executor (which sends steps) and the workers (which run them)."""
    visibility = visibility_timeout(timeout)
    return {
        "task_acks_late": True,  # acknowledged when the step has ended: a dead worker's step goes to another one
        "task_reject_on_worker_lost": True,  # the same when only a worker's pool process dies
        "worker_prefetch_multiplier": 1,  # a worker holds no more steps than it runs
        # each step in a new pool process, which imports the code location as it is now: a pool process keeps the
        # module it imported once, so with one step per account an account added since would have no step on it
        "worker_max_tasks_per_child": 1,
        "task_track_started": True,
        "result_expires": 24 * 3600,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "unacked_restore_interval": restore_interval(visibility),
            "unacked_restore_throttle": 1,
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "result_backend_transport_options": {"visibility_timeout": visibility},
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
    }


def executor_config() -> dict:
    url = broker_url()
    return {"broker": url, "backend": url, "config_source": celery_settings()}


class _PlanWithTolerantDependencies(ExecutionPlan):
    """The execution plan as dagster-celery gets it, except that a step whose upstream step failed still runs once
    that step has yielded its outputs (the multiprocess executor's `step_dependency_config.require_upstream_step_success:
    false`, which dagster-celery does not expose): the marts run after every load has ended, also when one failed."""

    __slots__ = ()

    def start(self, *args, **kwargs):
        from dagster._core.execution.step_dependency_config import StepDependencyConfig

        kwargs["step_dependency_config"] = StepDependencyConfig(require_upstream_step_success=False)
        return super().start(*args, **kwargs)


class FleetCeleryExecutor(CeleryExecutor):
    def execute(self, plan_context, execution_plan):
        execution_plan.__class__ = _PlanWithTolerantDependencies
        return core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=_submit_task)


@executor(
    name="celery",
    config_schema={
        "broker": Field(Noneable(StringSource), is_required=False),
        "backend": Field(Noneable(StringSource), is_required=False),
        "config_source": Field(Noneable(Permissive()), is_required=False),
        "retries": get_retries_config(),
    },
    requirements=multiple_process_executor_requirements(),
)
def fleet_celery_executor(init_context):
    """dagster-celery's executor with the fleet's dependency rule (see _PlanWithTolerantDependencies)."""
    config = init_context.executor_config
    return FleetCeleryExecutor(
        broker=config.get("broker"),
        backend=config.get("backend"),
        config_source=config.get("config_source"),
        retries=RetryMode.from_config(config["retries"]),
    )


def make_worker_app():
    """The Celery app a worker runs: dagster-celery's step task, with the fleet's broker and settings."""
    settings = executor_config()
    worker = CeleryExecutor.for_cli(
        broker=settings["broker"], backend=settings["backend"], config_source=settings["config_source"]
    )
    celery_app = make_app(worker.app_args())
    create_task(celery_app)
    return celery_app


# `celery -A invoiz_ops.fleet.celery_worker worker` finds this; only workers import it with a broker set.
app = make_worker_app() if os.environ.get("INVOIZ_FLEET_BROKER") else None
