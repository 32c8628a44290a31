"""`make card EMAIL=...`: the ticket-side customer card (R7) for one customer, read from the dbt marts.

Prints Kundenwert gesamt and Kundenwert Rechnungen, the open (offen) and paid (bezahlt) amounts, and every invoice of
the customer with its number, date, days since the invoice date, status and link into invoiz. Everything comes from
`analytics.customer_values` and `analytics.customer_invoices` as dbt built them; nothing is recomputed here (day
counts are as of the last `dbt build`, shown as "Stand").

Database: your PostgreSQL when PGHOST is set (environment or .env; database PGDATABASE, else invoiz_demo), otherwise
the embedded PostgreSQL (started for the moment if it is not running): database invoiz once `make sync` has built the
marts there, then the demo's invoiz_demo.
The e-mail is matched the way the marts normalise it (trimmed, lower-case, "Name <addr>" and "mailto:" unwrapped).

Exit status: 0 card printed · 1 no customer with that e-mail · 2 usage · 3 no database or no marts yet.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg import sql

from invoiz_ops import embedded_db
from invoiz_ops.pipeline import load_dotenv_database_settings

DEMO_DATABASE = "invoiz_demo"  # ops/invoiz_ops/demo.py's database
RUN_THE_PIPELINE = (
    "run `make demo` (sandbox data) or `make sync` (your invoiz account; `.venv/bin/meltano run sync` "
    "with PG* set does the same) first"
)

EXIT_NOT_FOUND, EXIT_USAGE, EXIT_NO_DATA = 1, 2, 3

# The normalisation of transform/macros/normalize_email.sql, applied to the typed e-mail in SQL (same regexes);
# {collate} is the macro's email_lower_collation() (pg_c_utf8 on PostgreSQL 17+).
NORMALIZE_EMAIL = r"""
nullif(lower(
    regexp_replace(
        regexp_replace(
            regexp_replace(
                regexp_replace(normalize(%(email)s::text, NFC),
                    '^[\s\u00a0\u200b\ufeff]+|[\s\u00a0\u200b\ufeff]+$', '', 'g'),
                '^[^<]*<\s*([^<>\s]+@[^<>\s]+)\s*>.*$', '\1'),
            '^mailto:\s*', '', 'i'),
        '\s*[,;].*$', '') {collate}), '')
"""


class NoData(Exception):
    """No database, or no marts in it yet."""


@dataclass
class Card:
    email: str
    name: str | None
    values: dict
    invoices: list[dict]


def _connect(pg_env: dict[str, str], database: str) -> psycopg.Connection:
    try:
        return psycopg.connect(
            host=pg_env["PGHOST"],
            port=int(pg_env.get("PGPORT") or 5432),
            user=pg_env.get("PGUSER") or None,
            password=pg_env.get("PGPASSWORD") or None,
            dbname=database,
            connect_timeout=10,
        )
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"database {database} at {pg_env['PGHOST']}:{pg_env.get('PGPORT') or 5432}"
        msg = f"Cannot open {where} ({first_line}): {RUN_THE_PIPELINE}."
        raise NoData(msg) from None


def _embedded_database(pg_env: dict[str, str], schema: str) -> str:
    """On the embedded server: the database of your own runs (`make sync`) once it has marts, else the demo's (the
    demo's is also searched when the customer is not in yours)."""
    try:
        with _connect(pg_env, embedded_db.OWN_RUNS_DATABASE) as conn:
            found = conn.execute("select to_regclass(%s) is not null", (f"{schema}.customer_values",)).fetchone()[0]
    except (NoData, psycopg.Error):
        found = False
    return embedded_db.OWN_RUNS_DATABASE if found else DEMO_DATABASE


def read_card(conn: psycopg.Connection, email: str, schema: str) -> Card | None:
    version = conn.execute("select current_setting('server_version_num')::int").fetchone()[0]
    collate = 'collate "pg_c_utf8"' if version >= 170000 else ""
    normalized = conn.execute(f"select {NORMALIZE_EMAIL.format(collate=collate)}", {"email": email}).fetchone()[0]
    if not normalized:
        return None

    def rows(query: sql.Composable, params: tuple) -> list[dict]:
        cursor = conn.execute(query, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    table = lambda name: sql.Identifier(schema, name)  # noqa: E731
    try:
        values = rows(
            sql.SQL(
                """select email, total_value, invoice_value, other_value, open_amount, paid_amount, invoice_count,
                      open_invoice_count, paid_invoice_count, currency, value_basis
               from {} where email = %s"""
            ).format(table("customer_values")),
            (normalized,),
        )
        if not values:
            return None
        invoices = rows(
            sql.SQL(
                """select account, invoice_id, invoice_number, invoice_date, days_since_invoice_date, as_of_date, status,
                      status_label, counts_toward_value, amount, open_amount, invoice_url
               from {} where email = %s
               order by invoice_date desc nulls last, account, invoice_id desc"""
            ).format(table("customer_invoices")),
            (normalized,),
        )
        names = rows(
            sql.SQL("select display_name, company_name from {} where email = %s").format(table("customers")),
            (normalized,),
        )
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName, psycopg.errors.UndefinedColumn) as exc:
        conn.rollback()
        msg = f"No customer marts in schema {schema} yet ({str(exc).splitlines()[0]}): {RUN_THE_PIPELINE}."
        raise NoData(msg) from None
    name = (names[0]["display_name"] or names[0]["company_name"]) if names else None
    return Card(email=normalized, name=name, values=values[0], invoices=invoices)


BASIS_WORDS = {"gross": "brutto", "net": "netto"}


def money(amount: Decimal | None, currency: str) -> str:
    """German notation: 1.234,56 EUR."""
    text = f"{amount or 0:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
    return f"{text} {currency}"


def invoices_word(count: int) -> str:
    return f"{count} Rechnung" if count == 1 else f"{count} Rechnungen"


def render(card: Card) -> str:
    v = card.values
    currency = v["currency"] or "EUR"
    width = max(len(money(v[k], currency)) for k in ("total_value", "invoice_value", "open_amount", "paid_amount"))
    lines = [f"Kunde: {card.email}" + (f"  ({card.name})" if card.name else "")]
    lines.append(f"  Kundenwert gesamt      {money(v['total_value'], currency):>{width}}")
    basis = BASIS_WORDS.get(v["value_basis"], v["value_basis"])
    lines.append(
        f"  Kundenwert Rechnungen  {money(v['invoice_value'], currency):>{width}}"
        f"   {invoices_word(v['invoice_count'])} ({basis})"
    )
    lines.append(
        f"  offen                  {money(v['open_amount'], currency):>{width}}"
        f"   {invoices_word(v['open_invoice_count'])}"
    )
    # bezahlt counts what was paid, also on invoices still open (partly paid): say how much of it that is, so the
    # number adds up with the paid invoices listed below
    paid_in_full = sum((i["amount"] or 0) for i in card.invoices if i["status"] == "paid")
    partly = (v["paid_amount"] or 0) - paid_in_full
    on_open = f", davon {money(partly, currency)} Teilzahlungen offener Rechnungen" if partly else ""
    lines.append(
        f"  bezahlt                {money(v['paid_amount'], currency):>{width}}"
        f"   {invoices_word(v['paid_invoice_count'])}{on_open}"
    )
    if not card.invoices:
        lines.append("\n  Keine Rechnungen.")
        return "\n".join(lines)
    as_of = next((i["as_of_date"] for i in card.invoices if i["as_of_date"]), None)
    several_accounts = len({i["account"] for i in card.invoices}) > 1
    lines.append("")
    lines.append(f"  Rechnungen ({len(card.invoices)}, Tage seit Rechnungsdatum Stand {as_of}):")
    table = []
    for i in card.invoices:
        number = i["invoice_number"] or "(Entwurf)"
        if several_accounts:
            number = f"{i['account']}/{number}"
        days = "" if i["days_since_invoice_date"] is None else str(i["days_since_invoice_date"])
        status = (i["status_label"] or "") + ("" if i["counts_toward_value"] else "*")
        still_open = money(i["open_amount"], currency) if i["open_amount"] else ""
        table.append(
            (
                number,
                str(i["invoice_date"] or ""),
                days,
                status,
                money(i["amount"], currency),
                still_open,
                i["invoice_url"],
            )
        )
    header = ("Nr.", "Datum", "Tage", "Status", "Betrag", "davon offen", "Link in invoiz")
    widths = [max(len(row[c]) for row in [header, *table]) for c in range(6)]
    align = ["<", "<", ">", "<", ">", ">"]
    for row in [header, *table]:
        cells = [f"{row[c]:{align[c]}{widths[c]}}" for c in range(6)]
        lines.append("  " + "  ".join(cells) + "  " + row[6])
    if any(not i["counts_toward_value"] for i in card.invoices):
        lines.append("  * zählt nicht zum Kundenwert (Entwurf oder storniert)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        usage="make card EMAIL=kunde@example.de   (or: python -m invoiz_ops.card [--schema SCHEMA] EMAIL)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("email", nargs="?", default="", help="the customer's e-mail address")
    parser.add_argument(
        "--schema", default=None, help="schema of the dbt marts (default DBT_POSTGRES_SCHEMA or analytics)"
    )
    args = parser.parse_args(argv)
    if not args.email.strip():
        parser.print_usage(sys.stderr)
        print("Give the customer's e-mail address, e.g.: make card EMAIL=kunde@example.de", file=sys.stderr)
        return EXIT_USAGE

    load_dotenv_database_settings()
    schema = args.schema or os.environ.get("DBT_POSTGRES_SCHEMA") or "analytics"
    started = False
    try:
        if os.environ.get("PGHOST"):
            pg_env = {k: os.environ.get(k, "") for k in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD")}
            database = os.environ.get("PGDATABASE") or DEMO_DATABASE
        else:
            layout = embedded_db.Layout.default()
            if not (layout.data_dir / "PG_VERSION").exists():
                raise NoData(f"No embedded PostgreSQL with data yet (PGHOST is not set): {RUN_THE_PIPELINE}.")
            started = not embedded_db.is_running(layout)
            pg_env = embedded_db.start(layout)
            database = _embedded_database(pg_env, schema)
        with _connect(pg_env, database) as conn:
            card = read_card(conn, args.email, schema)
        if card is None and not os.environ.get("PGHOST") and database != DEMO_DATABASE:
            # your own runs first, then the demo's customers
            try:
                with _connect(pg_env, DEMO_DATABASE) as conn:
                    card = read_card(conn, args.email, schema)
                database = f"{database} or {DEMO_DATABASE}" if card is None else DEMO_DATABASE
            except NoData:
                pass
    except NoData as exc:
        print(exc, file=sys.stderr)
        return EXIT_NO_DATA
    finally:
        if started:
            embedded_db.release()
    if card is None:
        print(
            f"No customer with e-mail {args.email.strip()!r} in {schema}.customer_values (database {database}). "
            "E-mails are compared trimmed and lower-case; customers without an e-mail in invoiz have no card.",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    print(render(card))
    return 0


if __name__ == "__main__":
    sys.exit(main())
