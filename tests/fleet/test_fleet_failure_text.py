"""What a red fleet step says: the failed process and its first error line (not the last lines of Meltano's
traceback box), secrets masked, and what the run committed before it failed (never "unchanged" when rows were).

The logs are shaped like `meltano run`'s console output (timestamp, level, process name padded to 12, message).
"""

from __future__ import annotations

import uuid

import pytest

from invoiz_ops.fleet import runner, warehouse
from invoiz_ops.pipeline import connect, drop_database
from tap_invoiz.accounts import pack_credentials


def console(*lines: tuple[str, str, str]) -> str:
    return "\n".join(f"2026-12-05T05:24:22.530468Z [{level:<9}] {name:<12} {message}" for level, name, message in lines)


TARGET_RACE = console(
    ("info", "meltano", "Running job with name 'dev:tap-invoiz--acme-to-target-postgres'"),
    ("info", "tap-invoiz--acme", "sync done in 0.1 s: 12 records emitted (invoices 8, contacts 4); 12 new, 0 changed"),
    ("info", "target-postgres", "Traceback (most recent call last):"),
    ("info", "target-postgres", '  File "connector.py", line 421, in prepare_table'),
    ("info", "target-postgres", "    self.create_empty_table("),
    (
        "info",
        "target-postgres",
        'psycopg.errors.UniqueViolation: duplicate key value violates unique constraint "pg_type_typname_nsp_index"',
    ),
    ("info", "target-postgres", "DETAIL:  Key (typname, typnamespace)=(contacts, 16390) already exists."),
    ("info", "target-postgres", ""),
    ("info", "target-postgres", "The above exception was the direct cause of the following exception:"),
    ("info", "target-postgres", "Traceback (most recent call last):"),
    ("info", "target-postgres", '  File "base.py", line 1967, in _exec_single_context'),
    ("info", "target-postgres", "sqlalchemy.exc.IntegrityError: (psycopg.errors.UniqueViolation) duplicate key value"),
    ("error", "meltano", "Loader failed"),
    ("error", "meltano", "Block run completed"),
    *[("info", "meltano", f"BrokenPipeError box line {k}") for k in range(30)],
)


def test_the_first_error_is_the_target_exception_not_meltanos_last_lines():
    process, line = runner.first_error(TARGET_RACE, plugins=["tap-invoiz--acme", "target-postgres"])
    assert process == "target-postgres"
    assert line == (
        'psycopg.errors.UniqueViolation: duplicate key value violates unique constraint "pg_type_typname_nsp_index"'
    )


def test_the_taps_own_reason_is_its_last_line():
    log = console(
        ("info", "tap-invoiz--bolt", "tap-invoiz v0.1.0, Meltano SDK v0.54.9"),
        (
            "info",
            "tap-invoiz--bolt",
            "invoiz rejected the credentials (HTTP 401 from auth/token): check settings api_key",
        ),
        ("info", "target-postgres", "2026-12-05 05:23:20,858 | WARNING  | singer_sdk | something harmless"),
        ("error", "meltano", "Extractor failed"),
        ("error", "meltano", "Block run completed"),
    )
    assert runner.first_error(log) == (
        "tap-invoiz--bolt",
        "invoiz rejected the credentials (HTTP 401 from auth/token): check settings api_key",
    )


def test_a_killed_target_that_printed_nothing_is_named():
    log = console(("info", "tap-invoiz--acme", "tap-invoiz v0.1.0"), ("error", "meltano", "Loader failed"))
    process, line = runner.first_error(log, plugins=["tap-invoiz--acme", "target-postgres"])
    assert process == "target-postgres"
    assert line.startswith("target-postgres stopped without an error message (killed")


def test_secret_values_are_masked():
    secret = "s3cr3t-" + uuid.uuid4().hex
    log = console(
        ("info", "target-postgres", f"2026-12-05 05:23:20,858 | ERROR    | target-postgres | bad password {secret}"),
        ("error", "meltano", "Loader failed"),
    )
    process, line = runner.first_error(log, env={"PGPASSWORD": secret, "PGHOST": "127.0.0.1"})
    assert (process, line) == ("target-postgres", "bad password ***")


def test_a_shards_packed_credentials_are_masked_one_by_one():
    secret = "s3cr3t-" + uuid.uuid4().hex
    env = pack_credentials({"TAP_INVOIZ__ACME_API_KEY_SECRET": secret, "TAP_INVOIZ__BOLT_API_KEY": "other-key"})
    text = f"tap-invoiz-fleet | token refused for {secret}"
    assert runner.mask_secrets(text, env) == "tap-invoiz-fleet | token refused for ***"


@pytest.fixture
def warehouse_db(pg_env):
    name = f"failtext_{uuid.uuid4().hex[:10]}"
    with connect(pg_env, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield {**pg_env, "PGDATABASE": name}
    drop_database(pg_env, name)


def test_after_a_partial_commit_the_message_says_what_was_committed(warehouse_db):
    with connect(warehouse_db, warehouse_db["PGDATABASE"], autocommit=True) as conn:
        conn.execute("CREATE SCHEMA raw_invoiz")
        for table in ("invoices", "contacts"):
            conn.execute(f"CREATE TABLE raw_invoiz.{table} (account text, id int, _sdc_batched_at timestamp)")
        conn.execute(  # 5 invoices and 3 contacts committed by the run (now), 2 invoices by an earlier one
            "INSERT INTO raw_invoiz.invoices SELECT 'acme', g, LOCALTIMESTAMP FROM generate_series(1, 5) g;"
            "INSERT INTO raw_invoiz.invoices SELECT 'acme', g, LOCALTIMESTAMP - interval '1 hour' "
            "FROM generate_series(6, 7) g;"
            "INSERT INTO raw_invoiz.contacts SELECT 'acme', g, LOCALTIMESTAMP FROM generate_series(1, 3) g;"
            "INSERT INTO raw_invoiz.invoices SELECT 'other', g, LOCALTIMESTAMP FROM generate_series(1, 4) g"
        )
    text, metadata = warehouse.describe_commit(warehouse_db, ["acme"], "dev:tap-invoiz--acme-to-target-postgres", 60)
    assert text.startswith("rows committed before the failure: 5 invoices, 3 contacts")
    assert "unchanged" not in text
    assert "whether state was saved is not known" in text  # no MELTANO_DATABASE_URI here
    assert metadata["committed_rows"] == {"acme": {"invoices": 5, "contacts": 3}}

    text, _ = warehouse.describe_commit(warehouse_db, ["nobody"], "dev:tap-invoiz--nobody-to-target-postgres", 60)
    assert text.startswith("no rows committed by this run")
