"""What a fleet's runs did, read from Dagster's PostgreSQL storage: runs and their status, each step's outcome, the
materializations (per account: records, seconds, worker, ...) and a failed step's description and metadata. Used by
the deploy's `cycle` and demo, the tests and the benchmarks (ops/invoiz_ops/fleet/deploy.py's Fleet has them).
"""

from __future__ import annotations

import json

from invoiz_ops.pipeline import connect

JOB = "fleet_cycle"


class RunHistory:
    """Queries on the Dagster storage of a fleet: needs ``pg_env`` and ``dagster_db``."""

    pg_env: dict[str, str]
    dagster_db: str

    def runs(self) -> list[tuple[str, str]]:
        """(run id, status) of every fleet run, oldest first."""
        with connect(self.pg_env, self.dagster_db) as conn:
            return [
                tuple(r)
                for r in conn.execute("SELECT run_id, status FROM runs WHERE pipeline_name = %s ORDER BY id", (JOB,))
            ]

    def last_run_steps(self) -> tuple[str, dict[str, str]]:
        """(status, {step: STEP_SUCCESS|STEP_FAILURE|…}) of the latest fleet run, from Dagster's PostgreSQL storage."""
        run_id, status = self.runs()[-1]
        return status, self.run_steps(run_id)

    def run_steps(self, run_id: str) -> dict[str, str]:
        """{step: its last STEP_SUCCESS|STEP_FAILURE|STEP_SKIPPED|STEP_UPSTREAM_FAILURE} of one run."""
        with connect(self.pg_env, self.dagster_db) as conn:
            rows = conn.execute(
                "SELECT step_key, dagster_event_type FROM event_logs WHERE run_id = %s AND dagster_event_type IN "
                "('STEP_SUCCESS', 'STEP_FAILURE', 'STEP_SKIPPED', 'STEP_UPSTREAM_FAILURE') ORDER BY id",
                (run_id,),
            ).fetchall()
        return dict(rows)

    def materializations(self) -> list[tuple[str, dict]]:
        """(asset key, metadata) of every account/marts materialization of the latest run, in order."""
        with connect(self.pg_env, self.dagster_db) as conn:
            (run_id,) = conn.execute(
                "SELECT run_id FROM runs WHERE pipeline_name = %s ORDER BY id DESC LIMIT 1", (JOB,)
            ).fetchone()
            rows = conn.execute(
                "SELECT asset_key, event FROM event_logs WHERE run_id = %s AND dagster_event_type = "
                "'ASSET_MATERIALIZATION' ORDER BY id",
                (run_id,),
            ).fetchall()
        result = []
        for key, event in rows:
            body = json.loads(event)["dagster_event"]["event_specific_data"]["materialization"]
            path = json.loads(key) if key.startswith("[") else key.split("/")
            result.append((path[-1], metadata_of(body)))
        return result

    def step_failure(self, run_id: str, step: str) -> dict:
        """{"description", "metadata"} of a step's Failure (its STEP_FAILURE event)."""
        with connect(self.pg_env, self.dagster_db) as conn:
            (event,) = conn.execute(
                "SELECT event FROM event_logs WHERE run_id = %s AND step_key = %s AND dagster_event_type = "
                "'STEP_FAILURE' ORDER BY id DESC LIMIT 1",
                (run_id, step),
            ).fetchone()
        data = json.loads(event)["dagster_event"]["event_specific_data"]
        failure = data.get("user_failure_data") or {}
        return {"description": failure.get("description") or "", "metadata": metadata_of(failure)}


def metadata_of(body: dict) -> dict:
    """{label: value} of a serialized Dagster event body (older `metadata_entries` or newer `metadata`)."""
    metadata = {}
    for entry in body.get("metadata_entries") or []:
        value = entry.get("entry_data") or {}
        metadata[entry["label"]] = next((v for k, v in value.items() if k != "__class__"), None)
    for label, value in (body.get("metadata") or {}).items():
        metadata[label] = (
            next((v for k, v in value.items() if k != "__class__"), value) if isinstance(value, dict) else value
        )
    return metadata
