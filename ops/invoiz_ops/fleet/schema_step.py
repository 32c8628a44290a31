"""The schema step: create or alter the warehouse's raw tables once, before any parallel load.

target-postgres creates a table by checking whether it exists and then running a plain ``CREATE TABLE`` (and adds a
column the same way, with ``ALTER TABLE … ADD COLUMN``), without a lock: two targets starting on an empty warehouse
collide (``UniqueViolation … pg_type_typname_nsp_index`` or ``relation … already exists``). So no load creates
anything: this step feeds the tap's SCHEMA messages (``meltano invoke tap-invoiz --test=schema``, with Meltano's
stream selection) into one ``meltano invoke target-postgres`` — which creates the schema, the tables and any new
column exactly as a load would — while holding a PostgreSQL advisory lock, then records a fingerprint of those
messages in the warehouse. Loads start after it, find every table and column in place and run no DDL (only their
private temp tables).

Cheap when nothing changed: one tap process prints its schemas (no request to invoiz); the target runs only when
the fingerprint differs from the recorded one or a table is missing (a fresh warehouse, a tap version with a new
column). Run by ``invoiz_ops.fleet.deploy deploy`` and as the first step of every cycle (op ``warehouse_schema``).

    python -m invoiz_ops.fleet.schema_step     # what deploy runs (environment: as for a Dagster step)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass

from invoiz_ops.fleet import runner, warehouse

STEP = "schema"
TAP = "tap-invoiz"
TARGET = "target-postgres"
# --test=schema builds the tap's config without talking to invoiz; its credential settings are required all the same
PLACEHOLDER_CREDENTIALS = {
    "TAP_INVOIZ_API_KEY": "schema-only",
    "TAP_INVOIZ_API_KEY_SECRET": "schema-only",
    "TAP_INVOIZ_INSTALLATION_ID": "schema-only",
}


class SchemaStepError(RuntimeError):
    def __init__(self, process: str, result: runner.RunResult):
        self.process, self.result = process, result
        super().__init__(f"{process} failed (exit {result.returncode}): {result.first_error or 'see its log'}")


@dataclass
class SchemaOutcome:
    applied: bool  # the target ran (tables created or altered); False: the warehouse already had these schemas
    fingerprint: str
    streams: list[str]
    seconds: float
    cpu_seconds: float


def schema_messages(singer_output: str) -> list[dict]:
    """The SCHEMA messages of the selected streams (an unselected stream comes out with no properties)."""
    messages = []
    for line in singer_output.splitlines():
        if not line.startswith("{"):
            continue
        message = json.loads(line)
        if message.get("type") == "SCHEMA" and message.get("schema", {}).get("properties"):
            messages.append(message)
    return sorted(messages, key=lambda m: m["stream"])


def fingerprint(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


def step_env(base: dict[str, str]) -> dict[str, str]:
    """No account's credentials: the step reads no data."""
    env = {k: v for k, v in base.items() if not k.startswith("TAP_INVOIZ")}
    return {**env, **PLACEHOLDER_CREDENTIALS}


def _already_applied(cur, digest: str, streams: list[str]) -> bool:
    cur.execute("SELECT to_regclass(%s)", (f"{warehouse.RAW_SCHEMA}.{warehouse.MARKER_TABLE}",))
    if cur.fetchone()[0] is None:
        return False
    cur.execute(f"SELECT fingerprint FROM {warehouse.RAW_SCHEMA}.{warehouse.MARKER_TABLE}")
    row = cur.fetchone()
    if not row or row[0] != digest:
        return False
    for stream in streams:
        cur.execute("SELECT to_regclass(%s)", (f'{warehouse.RAW_SCHEMA}."{stream}"',))
        if cur.fetchone()[0] is None:
            return False
    return True


def ensure_warehouse_schema(env: dict[str, str]) -> SchemaOutcome:
    """Create or alter the raw tables for the tap's current schemas, once; raises SchemaStepError naming the process
    (tap or target) and its first error line."""
    env = step_env(env)
    tap = runner.meltano(["invoke", TAP, "--test=schema"], env, step=STEP)
    if not tap.ok:
        raise SchemaStepError(TAP, tap)
    messages = schema_messages(tap.stdout)
    if not messages:
        raise SchemaStepError(TAP, tap)
    digest = fingerprint(messages)
    streams = [m["stream"] for m in messages]
    seconds, cpu = tap.seconds, tap.cpu_seconds
    with warehouse.advisory_lock(warehouse.SCHEMA_LOCK_KEY, env) as conn, conn.cursor() as cur:
        if _already_applied(cur, digest, streams):
            return SchemaOutcome(False, digest, streams, round(seconds, 1), round(cpu, 2))
        target = runner.meltano(
            ["invoke", TARGET], env, step=STEP, input_text="".join(json.dumps(m) + "\n" for m in messages)
        )
        if not target.ok:
            raise SchemaStepError(TARGET, target)
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {warehouse.RAW_SCHEMA}.{warehouse.MARKER_TABLE} "
            "(fingerprint text NOT NULL, streams text NOT NULL, applied_at timestamp NOT NULL)"
        )
        cur.execute(f"DELETE FROM {warehouse.RAW_SCHEMA}.{warehouse.MARKER_TABLE}")
        cur.execute(
            f"INSERT INTO {warehouse.RAW_SCHEMA}.{warehouse.MARKER_TABLE} VALUES (%s, %s, %s)",
            (digest, ", ".join(streams), warehouse.utcnow()),
        )
    return SchemaOutcome(True, digest, streams, round(seconds + target.seconds, 1), round(cpu + target.cpu_seconds, 2))


def main() -> int:
    try:
        outcome = ensure_warehouse_schema(dict(os.environ))
    except SchemaStepError as exc:
        print(f"schema step: {exc}", file=sys.stderr)
        return 1
    print(
        f"schema step: {', '.join(outcome.streams)} "
        + ("created or altered" if outcome.applied else "already in place")
        + f" ({outcome.seconds} s, {outcome.cpu_seconds} CPU-s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
