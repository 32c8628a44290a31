"""A run that waits for a pool slot waits without spinning a core.

Dagster 1.13's multiprocess executor (``dagster/_core/executor/multiprocess.py``) pauses only while it polls the
steps it runs (20 ms each). When no step of the run is running and every step it could start waits for a pool slot
that another run holds (a cycle still loading, or a killed run until run monitoring fails it), its loop asks for
the next steps again at once: one core at 100 % for as long as the wait lasts (183 CPU-s in one 3-minute wait of a
fleet audit; 2.97 CPU-s in 3 s in tests/fleet/test_fleet_recovery.py without this module). Dagster knows when it
will next ask for the slot (``InstanceConcurrencyContext``'s back-off, up to 15 s between database checks), but this
loop never sleeps until then. Every cycle gets there, the daemon's too: its run queue holds a run back only while
the pools of the run's first steps are full (``block_op_concurrency_limited_runs``), and a cycle's first step (the
schema step) claims no pool (pools.py says why).

:func:`install` wraps ``ActiveExecution.get_steps_to_execute``: when it finds no step to start, none is running and
one waits for a slot, it sleeps until that slot's next check, at most :data:`MAX_WAIT` so that a termination
request is still seen promptly. Other executors (celery: a 1 s tick of its own) only gain that wait in the same
situation. It reads three private attributes of Dagster's; without them (another Dagster version) it does nothing,
and tests/fleet/test_fleet_recovery.py, which measures the waiting run's CPU, fails.
"""

from __future__ import annotations

import functools
import time

#: Longest single wait (seconds): the executor checks for a termination request between two waits.
MAX_WAIT = 1.0


def seconds_to_next_claim_check(active_execution: object) -> float:
    """How long the run can sleep: 0 unless nothing is running and a step waits for a pool slot."""
    if getattr(active_execution, "_in_flight", True):  # a running step: the loop pauses while it polls it
        return 0.0
    claims = getattr(active_execution, "_instance_concurrency_context", None)
    if claims is None or not claims.has_pending_claims():
        return 0.0
    next_checks = getattr(claims, "_pending_timeouts", None)
    if not next_checks:
        return 0.0
    return min(MAX_WAIT, max(0.0, min(next_checks.values()) - time.time()))


def install() -> None:
    """Wrap ActiveExecution.get_steps_to_execute once per process (the code location imports this)."""
    from dagster._core.execution.plan.active import ActiveExecution

    original = ActiveExecution.get_steps_to_execute
    if getattr(original, "waits_for_pool_slots", False):
        return

    @functools.wraps(original)
    def get_steps_to_execute(self, limit=None):
        steps = original(self, limit)
        if not steps:
            wait = seconds_to_next_claim_check(self)
            if wait > 0:
                time.sleep(wait)
        return steps

    get_steps_to_execute.waits_for_pool_slots = True  # type: ignore[attr-defined]
    ActiveExecution.get_steps_to_execute = get_steps_to_execute  # type: ignore[method-assign]
