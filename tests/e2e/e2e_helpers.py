"""Helpers of the end-to-end tests (the reliability tests of docs/RELIABILITY.md and others): compare the raw tables
with the sandbox, read Meltano's state, run `meltano` with an environment of our choosing. No tests here."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import subprocess
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from invoiz_ops.pipeline import (
    PROJECT_ROOT,
    VERBOSE_TARGET,
    Pipeline,
    drop_database,
    meltano_command,
    private_run_dirs,
    recreate_database,
)

EL = ("tap-invoiz", "target-postgres")  # extract-load only; the dbt build runs in the tests that check the marts
STATE_ID = "dev:tap-invoiz-to-target-postgres"  # Meltano's state id of `meltano run tap-invoiz target-postgres`

# target-postgres metadata columns that differ between runs by design (when a row was extracted, received, batched,
# its sequence and table version, when the sync started); every other column must be reproducible.
RUN_METADATA_COLUMNS = (
    "_sdc_extracted_at",
    "_sdc_received_at",
    "_sdc_batched_at",
    "_sdc_sequence",
    "_sdc_table_version",
    "_sdc_sync_started_at",
)


@contextlib.contextmanager
def scratch_pipeline(pg_env: dict, sandbox, folder: Path, prefix: str = "e2e"):
    """The project's Meltano pipeline wired to ``sandbox``, a new empty database (dropped afterwards) and its own state
    store, .meltano/run and dbt dirs under ``folder``: a test session must not trip over another one in the same
    checkout. target-postgres logs at info (meltano.yml keeps it quiet): tests count records from its METRIC lines."""
    database = f"{prefix}_{uuid.uuid4().hex[:12]}"  # unique across xdist workers and parallel sessions
    recreate_database(pg_env, database)
    try:
        yield Pipeline(
            pg_env=pg_env,
            database=database,
            api_url=sandbox.api_url,
            app_url=sandbox.app_url,
            credentials=dict(sandbox.credentials),
            account="test",
            state_dir=folder / "meltano-state",
            extra_env={**private_run_dirs(folder), **VERBOSE_TARGET},
        )
    finally:
        drop_database(pg_env, database)


@pytest.fixture(autouse=True)
def own_meltano_dirs(pipeline, tmp_path):
    """Every reliability test runs Meltano and dbt in its own system/target dirs (invoiz_ops.pipeline.private_run_dirs)."""
    pipeline.extra_env.update(private_run_dirs(tmp_path))
    return tmp_path


def meltano(pipe, *args: str, env: dict | None = None, drop: tuple[str, ...] = (), timeout: float = 600):
    """`meltano ARGS` with the pipeline's environment, plus ``env`` and minus the variables in ``drop``."""
    run_env = pipe.env()
    run_env.update(env or {})
    for name in drop:
        run_env.pop(name, None)
    return subprocess.run(
        meltano_command(*args),
        cwd=PROJECT_ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output(result) -> str:
    return (result.stdout or "") + (result.stderr or "")


def emitted(result) -> dict[str, int]:
    """Records per stream that reached the target in a `meltano run` (target-postgres' record_count metrics; the
    tap's own metric lines carry no stream name since it logs structured). A stream whose SCHEMA arrived but no
    record counts 0, so an empty dict means the log was not understood, not that nothing was sent. The tap's own
    report stream `sync_status` (one row per account and stream, every run) is left out: only invoiz data counts."""
    counts: dict[str, int] = {}
    # without them every "emitted nothing" check would pass: target-postgres logs them only when asked
    assert re.search(r"target-postgres +METRIC", output(result)), (
        "no target-postgres METRIC lines: run with invoiz_ops.pipeline.VERBOSE_TARGET in the environment"
    )
    for match in re.finditer(r"target-postgres +METRIC: (\{.*?\})(?:\s|$)", output(result)):
        try:
            metric = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        if metric.get("metric") == "record_count":
            stream = metric.get("tags", {}).get("stream")
            if stream == "sync_status":
                continue
            counts[stream] = counts.get(stream, 0) + int(metric["value"])
    return counts


def table_exists(pipe, table: str) -> bool:
    return bool(pipe.scalar("select to_regclass(%s) is not null", (f"raw_invoiz.{table}",)))


def schema_exists(pipe) -> bool:
    return bool(pipe.scalar("select count(*) from information_schema.schemata where schema_name = 'raw_invoiz'"))


def snapshot(pipe, table: str, exclude: tuple[str, ...] = (), live_only: bool = False) -> list[tuple]:
    """Every row of a raw table as text, ordered by key, without the columns in ``exclude``."""
    columns = [
        r[0]
        for r in pipe.query(
            "select column_name from information_schema.columns where table_schema = 'raw_invoiz' and table_name = %s "
            "order by column_name",
            (table,),
        )
    ]
    keep = [c for c in columns if c not in exclude]
    select = ", ".join(f'"{c}"::text' for c in keep)
    where = " where _sdc_deleted_at is null" if live_only else ""
    return [
        tuple(zip(keep, row))
        for row in pipe.query(f"select {select} from raw_invoiz.{table}{where} order by account, id")
    ]


def _number(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


INVOICE_COLUMNS = {  # column -> API field of a list row, compared verbatim (numbers as decimals)
    "number": "number",
    "state": "state",
    "type": "type",
    "customer_id": "customerId",
    "title": "title",
    "total_net": "totalNet",
    "total_gross": "totalGross",
    "outstanding_amount": "outstandingAmount",
    "cash_discount_total": "cashDiscountTotal",
}
CONTACT_COLUMNS = {"number": "number", "name": "name", "email": "email", "kind": "kind", "company_name": "companyName"}


def assert_raw_tables_equal_source(pipe, sandbox, account: str = "test") -> None:
    """The live rows of raw_invoiz.invoices/contacts are exactly the sandbox's rows: same keys (no row missing, none
    extra, none twice), and every key, amount and text column equal to what the API serves."""
    for table in ("invoices", "contacts"):
        assert pipe.scalar(f"select count(*) - count(distinct (account, id)) from raw_invoiz.{table}") == 0, table
    invoices = {
        r[0]: r[1:]
        for r in pipe.query(
            f"select id, {', '.join(INVOICE_COLUMNS)} from raw_invoiz.invoices "
            "where _sdc_deleted_at is null and account = %s",
            (account,),
        )
    }
    source_ids = set(sandbox.invoice_ids())
    assert set(invoices) - source_ids == set(), "rows in the table that invoiz does not have"
    assert source_ids - set(invoices) == set(), "invoices missing from the table"
    for invoice_id in sorted(source_ids):
        row = sandbox.invoice_row(invoice_id)
        loaded = dict(zip(INVOICE_COLUMNS, invoices[invoice_id]))
        for column, api in INVOICE_COLUMNS.items():
            expected = row.get(api)
            if column.startswith(("total", "outstanding", "cash")):
                assert _number(loaded[column]) == _number(expected), (invoice_id, column)
            elif column == "number":
                assert loaded[column] == (expected or None), (invoice_id, column)
            else:
                assert loaded[column] == expected, (invoice_id, column)
    contacts = {
        r[0]: r[1:]
        for r in pipe.query(
            f"select id, {', '.join(CONTACT_COLUMNS)} from raw_invoiz.contacts "
            "where _sdc_deleted_at is null and account = %s",
            (account,),
        )
    }
    assert set(contacts) == set(sandbox.contact_ids())
    for contact_id in sandbox.contact_ids():
        source = sandbox.contact(contact_id)
        assert dict(zip(CONTACT_COLUMNS, contacts[contact_id])) == {
            c: source.get(a) for c, a in CONTACT_COLUMNS.items()
        }, contact_id


def deleted_ids(pipe, table: str) -> set[int]:
    return {r[0] for r in pipe.query(f"select id from raw_invoiz.{table} where _sdc_deleted_at is not null")}


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def meltano_state(pipe, state_id: str = STATE_ID) -> dict:
    """The job's state in Meltano's system database (what `meltano state get` prints: the completed state with any
    partial state of a failed run merged over it), read with sqlite to save a Meltano start per call."""
    import sqlite3

    with sqlite3.connect(pipe.state_dir / "meltano.db") as conn:
        row = conn.execute(
            "select partial_state, completed_state from state where state_id = ?", (state_id,)
        ).fetchone()
    if row is None:
        return {}
    partial, completed = (json.loads(text) if text else {} for text in row)
    return _merge(completed or {}, partial or {})


def state_fingerprints(state: dict, stream: str, account: str = "test") -> dict[int, int]:
    from tap_invoiz import fingerprint

    entry = (state.get("singer_state") or state).get("bookmarks", {}).get(stream, {}).get("accounts", {}).get(account)
    return fingerprint.decode(entry["fingerprints"]) if entry else {}


def row_fingerprint(row: dict, app_url: str) -> int:
    """The fingerprint the tap records for a list row (InvoizStream.fingerprint_salt: mapping version | app_url)."""
    from tap_invoiz import fingerprint
    from tap_invoiz.mapping_version import mapping_version

    return fingerprint.fingerprint(row, f"{mapping_version()}|{app_url.rstrip('/')}")


def assert_state_not_ahead_of_tables(pipe, sandbox, state: dict) -> None:
    """Every row the state says was delivered is in the table, and every row whose state fingerprint is the
    source's current one has the source's current values in the table (state never runs ahead of the load)."""
    fps = state_fingerprints(state, "invoices")
    rows = {
        r[0]: r[1:]
        for r in pipe.query(
            "select id, state, total_gross, outstanding_amount from raw_invoiz.invoices where _sdc_deleted_at is null"
        )
    }
    assert set(fps) <= set(rows), "the state tracks invoices the table does not have"
    live = set(sandbox.invoice_ids())
    for invoice_id, fp in fps.items():
        if invoice_id in live and fp == row_fingerprint(sandbox.invoice_row(invoice_id), sandbox.app_url):
            source = sandbox.invoice_row(invoice_id)
            assert rows[invoice_id] == (
                source["state"],
                _number(source["totalGross"]),
                _number(source["outstandingAmount"]),
            ), invoice_id
    contact_fps = state_fingerprints(state, "contacts")
    contacts = {
        r[0]: r[1] for r in pipe.query("select id, email from raw_invoiz.contacts where _sdc_deleted_at is null")
    }
    assert set(contact_fps) <= set(contacts), "the state tracks contacts the table does not have"
    for contact_id, fp in contact_fps.items():
        if contact_id in set(sandbox.contact_ids()) and fp == row_fingerprint(
            sandbox.contact(contact_id), sandbox.app_url
        ):
            assert contacts[contact_id] == sandbox.contact(contact_id).get("email"), contact_id


def make_changes(sandbox) -> dict:
    """Typical changes between two syncs: pay an old open invoice, a new and a back-dated invoice, delete a draft,
    change a contact's e-mail. Returns what was touched."""
    ids = sandbox.invoice_ids()
    open_ids = [i for i in ids if sandbox.invoice(i)["state"] in ("locked", "dunned")]
    draft = next(i for i in ids if sandbox.invoice(i)["state"] == "draft")
    contact = sandbox.contact_ids()[0]
    paid = open_ids[0]
    sandbox.pay(paid)
    new = sandbox.create_invoice(customer_id=contact)
    backdated = sandbox.create_invoice(customer_id=contact, date="2020-02-03")
    sandbox.delete_invoice(draft)
    sandbox.set_contact_email(contact, "Geaendert@Beispiel.de")
    return {"paid": paid, "new": new, "backdated": backdated, "deleted_draft": draft, "contact": contact}


# -- extract-load without Meltano -------------------------------------------------------------------------------------
# Tests of what the tap and target-postgres do with the data (faults, increments, idempotence) need Meltano's plugins,
# not Meltano: a `meltano run` costs about 3 CPU-seconds of Meltano's own start-up on top of the 1.3 of the load
# itself. `direct_el` pipes the plugin executables `meltano install` built, with the configs and catalog as Meltano
# resolves them from meltano.yml (`meltano invoke --dump`, once per session), and keeps the state as Meltano does: the
# last STATE line the target emitted after a successful run. What Meltano itself does (its messages, the state store,
# --force, preflight) stays with the tests that call `meltano run`.
PLUGIN_EXECUTABLES = {
    "tap-invoiz": PROJECT_ROOT / ".meltano" / "extractors" / "tap-invoiz" / "venv" / "bin" / "tap-invoiz",
    "target-postgres": PROJECT_ROOT / ".meltano" / "loaders" / "target-postgres" / "venv" / "bin" / "target-postgres",
}
_RESOLVED: dict[str, object] = {}


def _resolved(pipe) -> dict[str, object]:
    """Configs and catalog as Meltano hands them to the plugins, and the variables it exports for settings that name
    one (`env:` in meltano.yml); resolved once with ``pipe``'s environment minus a test's own plugin settings."""
    if not _RESOLVED:
        plain = dataclasses.replace(
            pipe, extra_env={k: v for k, v in pipe.extra_env.items() if not k.startswith(("TAP_INVOIZ_", "TARGET_"))}
        )
        plain.extra_env.update(VERBOSE_TARGET)  # the METRIC lines emitted() counts
        resolved: dict[str, object] = {}  # kept only once complete: a failed dump raises again in the next test
        for plugin in PLUGIN_EXECUTABLES:
            resolved[plugin] = json.loads(plain.meltano("invoke", "--dump=config", plugin).stdout)
        resolved["catalog"] = json.loads(plain.meltano("invoke", "--dump=catalog", "tap-invoiz").stdout)
        declared = yaml.safe_load((PROJECT_ROOT / "meltano.yml").read_text())["plugins"]
        resolved["env"] = {
            plugin["name"]: {s["env"]: s["name"] for s in plugin.get("settings", []) if "env" in s}
            for kind in declared.values()
            for plugin in kind
        }
        _RESOLVED.update(resolved)
    return _RESOLVED


def direct_el(pipe, full_refresh: bool = False, check: bool = True, **tap_settings) -> subprocess.CompletedProcess:
    """`tap-invoiz | target-postgres` for ``pipe`` (its sandbox, credentials, account and database), with
    ``tap_settings`` over meltano.yml's, the state from the previous successful direct_el of the pipeline unless
    ``full_refresh``. The result's stderr has the tap's lines, then the target's, each prefixed with the plugin's name
    as in Meltano's log (emitted() and output() read it as they read a `meltano run`)."""
    resolved = _resolved(pipe)
    pipe.state_dir.mkdir(parents=True, exist_ok=True)
    state_file = pipe.state_dir / "direct-el-state.json"
    folder = Path(tempfile.mkdtemp(prefix="direct-el-", dir=pipe.state_dir))
    tap_config = {
        **resolved["tap-invoiz"],
        **pipe.credentials,
        "account": pipe.account,
        "api_url": pipe.api_url,
        "app_url": pipe.app_url,
        **tap_settings,
    }
    target_config = {
        **resolved["target-postgres"],
        "host": pipe.pg_env["PGHOST"],
        "port": int(pipe.pg_env["PGPORT"]),
        "user": pipe.pg_env["PGUSER"],
        "password": pipe.pg_env.get("PGPASSWORD", ""),
        "database": pipe.database,
    }
    files = {"tap.json": tap_config, "target.json": target_config, "catalog.json": resolved["catalog"]}
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content))
    tap_args = ["--config", str(folder / "tap.json"), "--catalog", str(folder / "catalog.json")]
    if state_file.exists() and not full_refresh:
        tap_args += ["--state", str(state_file)]
    env = {k: v for k, v in pipe.env().items() if not k.startswith(("TAP_INVOIZ_", "TARGET_POSTGRES_", "SINGER_"))}

    def plugin_env(plugin: str, config: dict) -> dict[str, str]:
        exported = {var: config[name] for var, name in resolved["env"][plugin].items() if config.get(name) is not None}
        return {**env, **{var: str(value) for var, value in exported.items()}}

    with open(folder / "tap.err", "w+") as tap_err:
        tap = subprocess.Popen(
            [PLUGIN_EXECUTABLES["tap-invoiz"], *tap_args],
            stdout=subprocess.PIPE,
            stderr=tap_err,
            env=plugin_env("tap-invoiz", tap_config),
        )
        target = subprocess.run(
            [PLUGIN_EXECUTABLES["target-postgres"], "--config", str(folder / "target.json")],
            stdin=tap.stdout,
            capture_output=True,
            text=True,
            env=plugin_env("target-postgres", target_config),
            timeout=600,
            check=False,
        )
        tap.stdout.close()
        tap_code = tap.wait(timeout=600)
        tap_err.seek(0)
        tap_lines = tap_err.read().splitlines()
    stderr = "".join(f"tap-invoiz {line}\n" for line in tap_lines)
    stderr += "".join(f"target-postgres {line}\n" for line in target.stderr.splitlines())
    code = tap_code or target.returncode
    result = subprocess.CompletedProcess(["tap-invoiz | target-postgres"], code, target.stdout, stderr)
    if code == 0:
        states = [line for line in target.stdout.splitlines() if line.strip()]
        if states:
            state_file.write_text(states[-1])
    elif check:
        raise RuntimeError(
            f"tap-invoiz | target-postgres failed (exit {tap_code}, {target.returncode}):\n{stderr[-8000:]}"
        )
    return result
