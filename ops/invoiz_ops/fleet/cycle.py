"""One fleet cycle now, in this process's Dagster instance (DAGSTER_HOME): what `dagster job execute -f
ops/invoiz_ops/fleet/definitions.py -j fleet_cycle` did, without that command's "superseded" warning on every cycle.

    python -m invoiz_ops.fleet.cycle [--tags JSON]     # in the Dagster virtualenv; exit 0 when the run succeeded

The run is a real run of the instance (multiprocess executor, steps in subprocesses, events in PostgreSQL), as the
schedule starts it; the job is loaded through a module-level function, so each step process can load it again.
"""

from __future__ import annotations

import argparse
import json
import sys

JOB = "fleet_cycle"


def fleet_cycle_job():
    from invoiz_ops.fleet.definitions import defs

    return defs.get_job_def(JOB)


def main(argv: list[str] | None = None) -> int:
    from dagster import DagsterInstance, execute_job, reconstructable

    from invoiz_ops.fleet.cycle import fleet_cycle_job

    parser = argparse.ArgumentParser(prog="python -m invoiz_ops.fleet.cycle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", default="", help='JSON object of run tags, e.g. {"dagster/max_runtime": "900"}')
    args = parser.parse_args(argv)
    with DagsterInstance.get() as instance:
        result = execute_job(
            reconstructable(fleet_cycle_job),  # step processes import invoiz_ops.fleet.cycle and call it
            instance=instance,
            tags=json.loads(args.tags) if args.tags else None,
            raise_on_error=False,
        )
        print(f"{JOB} run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
