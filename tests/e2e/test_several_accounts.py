"""Several invoiz accounts in one warehouse, end to end: account extractors declared in accounts/*.meltano.yml load
into the same tables through the real `meltano run`, and no account ever changes another account's rows.

The three sandboxes number invoices from 0001 and give invoices and contacts the same ids, so keys, numbers and ids
collide across accounts exactly as they would for three real invoiz installations.
"""

from __future__ import annotations

import uuid

import pytest

from invoiz_ops.pipeline import Pipeline, drop_database, private_run_dirs, project_copy, recreate_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ACCOUNTS = ("nord", "sued", "west")
MARTS = "analytics"


def _settings(sb) -> dict[str, str]:
    return {"api_url": sb.api_url, "app_url": sb.app_url, **sb.credentials}


@pytest.fixture
def fleet(pg_env, invoiz_sandbox_factory, tmp_path):
    """Three sandboxes (own credentials, colliding ids and numbers) and a project copy declaring one account each."""
    sandboxes = {}
    for seed, account in enumerate(ACCOUNTS, start=1):
        sb = invoiz_sandbox_factory(seed=seed, invoices=30)
        sb.set_credentials(
            api_key=f"key-{account}", api_key_secret=f"secret-{account}", installation_id=f"installation-{account}"
        )
        sandboxes[account] = sb
    database = f"e2e_accounts_{uuid.uuid4().hex[:12]}"  # unique across xdist workers and parallel sessions
    recreate_database(pg_env, database)
    first = sandboxes[ACCOUNTS[0]]
    pipe = Pipeline(
        pg_env=pg_env,
        database=database,
        api_url=first.api_url,
        app_url=first.app_url,
        # tap-invoiz's own TAP_INVOIZ_* hold the first account's credentials: no other account may ever use them
        credentials=dict(first.credentials),
        account=ACCOUNTS[0],
        state_dir=tmp_path / "state",
        extra_env=private_run_dirs(tmp_path),
        project_root=project_copy(tmp_path, [*ACCOUNTS, "ohne"]),
        accounts={account: _settings(sb) for account, sb in sandboxes.items()},
    )
    yield pipe, sandboxes
    drop_database(pg_env, database)


def load(pipe, *accounts: str, build: bool = False, full_refresh: bool = False, check: bool = True):
    """One `meltano run` of the accounts' extract-load blocks, one after another, then (``build``) the marts: what a
    user's job over several accounts runs. One Meltano start for all of them."""
    blocks = [block for account in accounts for block in (f"tap-invoiz--{account}", "target-postgres")]
    return pipe.run(*blocks, *(["dbt-postgres:build"] if build else []), full_refresh=full_refresh, check=check)


def raw_rows(pipe, account: str) -> dict[str, list[tuple]]:
    """Every stored column of the account's raw rows, Singer metadata included: what "untouched" means."""
    return {
        table: pipe.query(f"select * from raw_invoiz.{table} where account = %s order by id", (account,))
        for table in ("invoices", "contacts")
    }


def live(pipe, account: str, model: str) -> dict[int, tuple]:
    key = "invoice_id" if "invoices" in model else "contact_id"
    amount = "total_gross" if "invoices" in model else "null::numeric"
    rows = pipe.query(f"select {key}, {amount} from {MARTS}.{model} where account = %s and not is_deleted", (account,))
    return dict(rows)


def mart_figures(pipe, account: str) -> tuple:
    """The account's share of the marts: invoices shown to support, their value, open and paid amounts, unassigned."""
    shown = pipe.query(
        f"select count(*), coalesce(sum(amount), 0), coalesce(sum(open_amount), 0), coalesce(sum(paid_amount), 0) "
        f"from {MARTS}.customer_invoices where account = %s",
        (account,),
    )[0]
    unassigned = pipe.scalar(f"select count(*) from {MARTS}.unassigned_invoices where account = %s", (account,))
    return (*shown, unassigned)


def expected_live_invoices(sb) -> dict[int, float]:
    return {i: round(sb.invoice(i)["totalGross"], 2) for i in sb.invoice_ids()}


def assert_matches_sandbox(pipe, account: str, sb) -> None:
    loaded = {k: float(v) for k, v in live(pipe, account, "stg_invoiz__invoices").items()}
    assert loaded == pytest.approx(expected_live_invoices(sb)), account
    assert set(live(pipe, account, "stg_invoiz__contacts")) == set(sb.contact_ids()), account


def report(pipe, step: str) -> None:
    """Live rows per account in raw tables and marts (printed with -s; the closing note quotes it)."""
    for account in ACCOUNTS:
        raw = pipe.scalar(
            "select count(*) from raw_invoiz.invoices where account = %s and _sdc_deleted_at is null", (account,)
        )
        staged = (
            pipe.scalar(
                f"select count(*) from {MARTS}.stg_invoiz__invoices where account = %s and not is_deleted", (account,)
            )
            if pipe.scalar("select to_regclass('analytics.stg_invoiz__invoices')")
            else None
        )
        print(
            f"{step:<32} {account:<5} raw live invoices {raw!s:>4}  staged live {staged!s:>4}  "
            f"marts {mart_figures(pipe, account) if staged is not None else '-'}"
        )


def test_three_accounts_share_the_tables_and_never_touch_each_other(fleet):
    """One chain over one warehouse: accounts added, one account's full refresh, an incremental run of each, the
    guards against borrowed or moved credentials, and the repair of rows an old full refresh soft-deleted."""
    pipe, sandboxes = fleet
    nord, sued, west = (sandboxes[a] for a in ACCOUNTS)

    # -- the first account, then a second and a third are added: the earlier ones stay byte-identical -------------
    load(pipe, "nord", build=True)
    nord_raw, nord_marts = raw_rows(pipe, "nord"), mart_figures(pipe, "nord")
    report(pipe, "nord added")
    load(pipe, "sued", "west", build=True)
    assert raw_rows(pipe, "nord") == nord_raw
    assert mart_figures(pipe, "nord") == nord_marts
    report(pipe, "sued and west added")
    for account, sb in sandboxes.items():
        assert_matches_sandbox(pipe, account, sb)
    west_raw = raw_rows(pipe, "west")
    west_marts = mart_figures(pipe, "west")

    # -- a full refresh of one account marks its own vanished rows, and nothing of the others --------------------
    draft = next(i for i in sued.invoice_ids() if sued.invoice(i)["state"] == "draft")
    sued.delete_invoice(draft)
    gone_contact = max(sued.contact_ids())
    sued.delete_contact(gone_contact)
    load(pipe, "sued", build=True, full_refresh=True)
    report(pipe, "sued --full-refresh")
    assert raw_rows(pipe, "nord") == nord_raw and raw_rows(pipe, "west") == west_raw
    assert mart_figures(pipe, "nord") == nord_marts and mart_figures(pipe, "west") == west_marts
    assert_matches_sandbox(pipe, "sued", sued)  # the draft and the contact are gone from staging
    assert (
        pipe.scalar(
            f"select is_deleted from {MARTS}.stg_invoiz__invoices where account = 'sued' and invoice_id = %s", (draft,)
        )
        is True
    )
    assert (
        pipe.scalar(
            f"select count(*) from {MARTS}.stg_invoiz__invoices where account <> 'sued' and invoice_id = %s "
            "and not is_deleted",
            (draft,),
        )
        == 2
    )  # the same id in the other accounts stays live

    # -- an incremental run of each: only its own change ---------------------------------------------------------
    nord_open = next(i for i in nord.invoice_ids() if nord.invoice(i)["state"] == "locked")
    nord.pay(nord_open)
    new_in_west = west.create_invoice(customer_id=min(west.contact_ids()), state="locked", amount=123.45)
    shared_email = pipe.scalar(
        f"select email from {MARTS}.customer_invoices where account = 'nord' order by amount desc limit 1"
    )
    sued_contact = next(
        c
        for c in sued.contact_ids()
        if any(
            sued.invoice(i).get("customerId") == c and sued.invoice(i)["state"] != "draft" for i in sued.invoice_ids()
        )
    )
    sued.set_contact_email(sued_contact, shared_email.upper())  # the same customer, written differently
    sued_before = raw_rows(pipe, "sued")
    load(pipe, *ACCOUNTS, build=True)
    report(pipe, "one change in each")
    for account, sb in sandboxes.items():
        assert_matches_sandbox(pipe, account, sb)
    assert (
        pipe.scalar("select state from raw_invoiz.invoices where account = 'nord' and id = %s", (nord_open,)) == "paid"
    )
    assert pipe.scalar("select count(*) from raw_invoiz.invoices where id = %s", (new_in_west,)) == 1
    changed_sued = [r for r in raw_rows(pipe, "sued")["contacts"] if r not in sued_before["contacts"]]
    assert [r[1] for r in changed_sued] == [sued_contact]

    # -- collisions are listed, and one e-mail in two accounts is one customer -----------------------------------
    across = pipe.scalar(f"select count(*) from {MARTS}.invoice_number_collisions where account_count = 3")
    assert across >= 10
    customer = pipe.query(f"select account_count, accounts from {MARTS}.customers where email = %s", (shared_email,))
    assert customer == [(2, "nord, sued")]
    invoice_accounts = {
        r[0] for r in pipe.query(f"select account from {MARTS}.customer_invoices where email = %s", (shared_email,))
    }
    assert invoice_accounts == {"nord", "sued"}

    # -- guards: no account borrows another one's credentials, or moves to another installation unasked ----------
    nord_raw, sued_raw = raw_rows(pipe, "nord"), raw_rows(pipe, "sued")
    nord_marts = mart_figures(pipe, "nord")
    # an account whose own credentials are missing does not borrow tap-invoiz's (they are nord's): it stops, naming them
    borrowed = load(pipe, "ohne", check=False)
    assert borrowed.returncode != 0
    assert "api_key" in borrowed.stderr
    assert pipe.scalar("select count(*) from raw_invoiz.invoices where account = 'ohne'") == 0

    # credentials of another installation under an account that has state: refused before anything is sent
    pipe.accounts["sued"] = _settings(nord)
    nord.reset_counters()
    moved = load(pipe, "sued", check=False)
    assert moved.returncode != 0
    assert "installation_id" in moved.stderr and "'sued'" in moved.stderr
    assert sum(nord.requests.values()) == 0
    assert raw_rows(pipe, "sued") == sued_raw and raw_rows(pipe, "nord") == nord_raw
    pipe.accounts["sued"] = _settings(sued)

    # -- repair: an older version's ACTIVATE_VERSION soft-deleted every row of the table; one full refresh per
    # account brings its rows back, to the cent
    pipe.query("update raw_invoiz.invoices set _sdc_deleted_at = now() returning 1")
    pipe.query("update raw_invoiz.contacts set _sdc_deleted_at = now() returning 1")
    pipe.run("dbt-postgres:build")
    assert mart_figures(pipe, "nord")[0] == 0
    load(pipe, "nord", "sued", build=True, full_refresh=True)
    for account in ("nord", "sued"):
        assert_matches_sandbox(pipe, account, sandboxes[account])
    assert mart_figures(pipe, "nord") == nord_marts
