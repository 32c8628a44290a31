"""The incremental contract of tap-invoiz (tap-invoiz/README.md, "Incremental sync"), each point through tap-invoiz
and target-postgres into PostgreSQL.

Every test drives the sandbox like a user would drive invoiz (pay an old invoice, delete a draft, change an e-mail)
and asserts what lands in PostgreSQL, comparing with the sandbox's own truth. The tests are one chain over one sandbox
and database (fixture ``synced``): each starts where the previous one left, with everything synced, makes its change
and syncs it, so only the first run of the chain starts from an empty database (each test paid one otherwise). The
full refresh, after which the raw table keeps rows invoiz no longer has, comes last. The chain runs the plugins
without Meltano (e2e_helpers.direct_el: Meltano's configs, catalog and state hand-over, without its start-up); the
killed run, which needs Meltano's `--force` after the crash, has a database of its own and the real `meltano run`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from e2e_helpers import direct_el, emitted, scratch_pipeline  # emitted: records per stream, from the target's metrics

from invoiz_ops.pipeline import PROJECT_ROOT, meltano_command
from invoiz_sandbox import Sandbox
from invoiz_sandbox.pytest_plugin import DEFAULTS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EL = ("tap-invoiz", "target-postgres")  # extract-load only; the dbt marts are covered in test_marts.py


def live_ids(pipe, table: str) -> set[int]:
    return {row[0] for row in pipe.query(f"select id from raw_invoiz.{table} where _sdc_deleted_at is null")}


def deleted_ids(pipe, table: str) -> set[int]:
    return {row[0] for row in pipe.query(f"select id from raw_invoiz.{table} where _sdc_deleted_at is not null")}


def assert_tables_match_sandbox(pipe, sandbox):
    assert live_ids(pipe, "invoices") == set(sandbox.invoice_ids())
    assert live_ids(pipe, "contacts") == set(sandbox.contact_ids())
    source = {i: sandbox.invoice(i) for i in sandbox.invoice_ids()}
    loaded = {
        row[0]: row[1:]
        for row in pipe.query(
            "select id, state, outstanding_amount, total_gross from raw_invoiz.invoices where _sdc_deleted_at is null"
        )
    }
    for invoice_id, invoice in source.items():
        state, outstanding, total = loaded[invoice_id]
        assert state == invoice["state"], invoice_id
        assert float(outstanding) == pytest.approx(invoice["outstandingAmount"]), invoice_id
        assert float(total) == pytest.approx(invoice["totalGross"]), invoice_id


@pytest.fixture(scope="module")
def synced(pg_env, tmp_path_factory):
    """A default sandbox, its pipeline and the result of the chain's first run into the empty database. Each test
    leaves everything it changed synced and its settings as it found them (the chain's tests run on one xdist worker,
    in this order: tests/conftest.py)."""
    with Sandbox(**DEFAULTS) as sandbox, scratch_pipeline(pg_env, sandbox, tmp_path_factory.mktemp("chain")) as pipe:
        yield pipe, sandbox, direct_el(pipe)


def test_first_run_loads_everything_and_a_rerun_without_change_emits_nothing(synced):
    pipeline, invoiz_sandbox, first = synced
    counts = emitted(first)
    assert counts.get("invoices") == len(list(invoiz_sandbox.invoice_ids()))
    assert counts.get("contacts") == len(list(invoiz_sandbox.contact_ids()))
    assert_tables_match_sandbox(pipeline, invoiz_sandbox)
    received_before = pipeline.scalar("select max(_sdc_received_at) from raw_invoiz.invoices")

    invoiz_sandbox.reset_counters()
    second = direct_el(pipeline)
    assert emitted(second).get("invoices", 0) == 0
    assert emitted(second).get("contacts", 0) == 0
    assert invoiz_sandbox.requests["invoice_detail"] == 0
    assert invoiz_sandbox.requests["customer_detail"] == 0
    assert pipeline.scalar("select max(_sdc_received_at) from raw_invoiz.invoices") == received_before
    assert deleted_ids(pipeline, "invoices") == set()


def test_changes_to_old_invoices_and_contacts_arrive_with_the_next_run(synced):
    pipeline, invoiz_sandbox, _ = synced
    invoices = [invoiz_sandbox.invoice(i) for i in invoiz_sandbox.invoice_ids()]
    open_invoices = sorted((i for i in invoices if i["state"] in ("locked", "dunned")), key=lambda i: i["date"])
    oldest_open, to_cancel = open_invoices[0], open_invoices[-1]
    contact_id = next(iter(invoiz_sandbox.contact_ids()))

    invoiz_sandbox.pay(oldest_open["id"])
    invoiz_sandbox.cancel(to_cancel["id"])
    invoiz_sandbox.set_contact_email(contact_id, "Neue.Adresse@Beispiel.de")
    result = direct_el(pipeline)

    counts = emitted(result)
    assert counts.get("invoices") == 2
    assert counts.get("contacts") == 1
    rows = dict(
        pipeline.query(
            "select id, status from raw_invoiz.invoices where id = any(%s)", ([oldest_open["id"], to_cancel["id"]],)
        )
    )
    assert rows == {oldest_open["id"]: "paid", to_cancel["id"]: "cancelled"}
    assert pipeline.scalar("select email from raw_invoiz.contacts where id = %s", (contact_id,)) == (
        "Neue.Adresse@Beispiel.de"
    )
    assert_tables_match_sandbox(pipeline, invoiz_sandbox)


def test_new_and_back_dated_invoices_arrive_with_the_next_run(synced):
    pipeline, invoiz_sandbox, _ = synced
    customer_id = next(iter(invoiz_sandbox.contact_ids()))
    new_id = invoiz_sandbox.create_invoice(customer_id=customer_id)
    backdated_id = invoiz_sandbox.create_invoice(customer_id=customer_id, date="2019-03-14")
    result = direct_el(pipeline)
    assert emitted(result).get("invoices") == 2
    rows = dict(
        pipeline.query("select id, date::text from raw_invoiz.invoices where id = any(%s)", ([new_id, backdated_id],))
    )
    assert rows[backdated_id] == "2019-03-14"
    assert new_id in rows
    assert_tables_match_sandbox(pipeline, invoiz_sandbox)


def test_deleted_draft_and_deleted_contact_are_marked_deleted_and_nothing_else(synced):
    pipeline, invoiz_sandbox, _ = synced
    invoices_before, contacts_before = deleted_ids(pipeline, "invoices"), deleted_ids(pipeline, "contacts")
    draft = next(i for i in invoiz_sandbox.invoice_ids() if invoiz_sandbox.invoice(i)["state"] == "draft")
    contact_id = max(invoiz_sandbox.contact_ids())
    invoiz_sandbox.delete_invoice(draft)
    invoiz_sandbox.delete_contact(contact_id)
    direct_el(pipeline)
    assert deleted_ids(pipeline, "invoices") == invoices_before | {draft}
    assert deleted_ids(pipeline, "contacts") == contacts_before | {contact_id}
    assert_tables_match_sandbox(pipeline, invoiz_sandbox)
    # and the next incremental run changes nothing: no row is resurrected or newly deleted
    direct_el(pipeline)
    assert deleted_ids(pipeline, "invoices") == invoices_before | {draft}
    assert_tables_match_sandbox(pipeline, invoiz_sandbox)


def test_changing_credentials_or_page_size_keeps_state_and_data(synced):
    pipeline, _, _ = synced
    rows_before = pipeline.scalar("select count(*) from raw_invoiz.invoices")
    deleted_before = deleted_ids(pipeline, "invoices")
    result = direct_el(pipeline, page_size=7)
    assert emitted(result).get("invoices", 0) == 0
    assert pipeline.scalar("select count(*) from raw_invoiz.invoices") == rows_before
    assert deleted_ids(pipeline, "invoices") == deleted_before


def test_changing_credentials_keeps_state_and_data(synced):
    pipeline, invoiz_sandbox, _ = synced
    rows_before = pipeline.scalar("select count(*) from raw_invoiz.invoices")
    deleted_before = deleted_ids(pipeline, "invoices")
    invoiz_sandbox.set_credentials(api_key="rotated-key", api_key_secret="rotated-secret")
    invoiz_sandbox.expire_tokens()
    pipeline.credentials = {**pipeline.credentials, "api_key": "rotated-key", "api_key_secret": "rotated-secret"}
    result = direct_el(pipeline)
    assert emitted(result).get("invoices", 0) == 0
    assert pipeline.scalar("select count(*) from raw_invoiz.invoices") == rows_before
    assert deleted_ids(pipeline, "invoices") == deleted_before


def test_full_refresh_resends_everything_and_marks_what_vanished(synced):
    """Last in the chain: afterwards the raw table keeps the vanished draft live (only staging marks it deleted)."""
    pipeline, invoiz_sandbox, _ = synced
    tombstoned_before = deleted_ids(pipeline, "invoices")  # rows earlier incremental runs marked deleted
    draft = next(i for i in invoiz_sandbox.invoice_ids() if invoiz_sandbox.invoice(i)["state"] == "draft")
    invoiz_sandbox.delete_invoice(draft)
    result = direct_el(pipeline, full_refresh=True)
    pipeline.run("dbt-postgres:build")
    assert emitted(result).get("invoices") == len(list(invoiz_sandbox.invoice_ids()))
    # no ACTIVATE_VERSION (it would act on every account's rows): the draft was not sent again, and staging marks the
    # account's rows extracted before the full refresh started as deleted
    assert deleted_ids(pipeline, "invoices") == tombstoned_before
    staged_deleted = {
        row[0] for row in pipeline.query("select invoice_id from analytics.stg_invoiz__invoices where is_deleted")
    }
    assert staged_deleted == tombstoned_before | {draft}
    staged_live = {
        row[0] for row in pipeline.query("select invoice_id from analytics.stg_invoiz__invoices where not is_deleted")
    }
    assert staged_live == set(invoiz_sandbox.invoice_ids())
    assert live_ids(pipeline, "invoices") - {draft} == set(invoiz_sandbox.invoice_ids())
    # a full refresh leaves state behind: the next normal run is incremental again
    assert emitted(direct_el(pipeline)).get("invoices", 0) == 0


def test_a_run_killed_midway_then_a_normal_run_loses_and_duplicates_nothing(pipeline, invoiz_sandbox):
    """Outside the chain (own sandbox and database): Meltano records the killed job as running for minutes, so every
    later run of the chain would need --force."""
    pipeline.run(*EL)
    paid = next(i for i in invoiz_sandbox.invoice_ids() if invoiz_sandbox.invoice(i)["state"] == "locked")
    invoiz_sandbox.pay(paid)
    new_id = invoiz_sandbox.create_invoice(customer_id=next(iter(invoiz_sandbox.contact_ids())), date="2020-01-02")
    # slow the API down so the kill lands in the middle of the scan
    invoiz_sandbox.set_latency(150)
    pipeline.extra_env["TAP_INVOIZ_PAGE_SIZE"] = "5"
    invoiz_sandbox.reset_counters()
    process = subprocess.Popen(
        meltano_command("run", *EL),
        cwd=PROJECT_ROOT,
        env=pipeline.env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while invoiz_sandbox.requests["invoice_list"] < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert invoiz_sandbox.requests["invoice_list"] >= 4, "the run never got going"

    invoiz_sandbox.set_latency(0)
    # Meltano still records the killed job as running; --force is what a user runs after a crash (see README).
    pipeline.run("--force", *EL)
    assert_tables_match_sandbox(pipeline, invoiz_sandbox)
    assert pipeline.scalar("select status from raw_invoiz.invoices where id = %s", (paid,)) == "paid"
    assert pipeline.scalar("select count(*) from raw_invoiz.invoices where id = %s", (new_id,)) == 1
    assert pipeline.scalar("select count(*) - count(distinct (account, id)) from raw_invoiz.invoices") == 0
