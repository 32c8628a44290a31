"""Mapping of API objects to the record contract: status, Berlin dates, odd amounts, contacts' flat columns."""

from __future__ import annotations

import decimal
import logging

import pytest

from tap_invoiz.records import invoice_status, to_berlin_date, to_datetime
from tap_invoiz.tap import TapInvoiz

CONFIG = {
    "api_key": "k",
    "api_key_secret": "s",
    "installation_id": "i",
    "app_url": "https://app.invoiz.de/",
    "account": "acme",
}


@pytest.fixture
def streams():
    return TapInvoiz(config=CONFIG).streams


@pytest.mark.parametrize(
    ("state", "outstanding", "status"),
    [
        ("draft", 100, "draft"),
        ("locked", 100, "open"),
        ("sent", 100, "open"),
        ("dunned", 50, "open"),
        ("partiallyPaid", 50, "open"),
        ("paid", 0, "paid"),
        ("cancelled", 0, "cancelled"),
        ("uncollectible", 100, "uncollectible"),
        ("printed", 0, "paid"),
        ("downloaded", 12.5, "open"),
        ("somethingNew", None, "unknown"),
        ("somethingNew", "1.234,56", "unknown"),
        (None, None, "unknown"),
    ],
)
def test_status(state, outstanding, status):
    assert invoice_status(state, outstanding) == status


@pytest.mark.parametrize(
    ("raw", "day"),
    [
        ("2026-07-15", "2026-07-15"),
        ("2026-07-15T00:00:00.000Z", "2026-07-15"),  # S2's form: Berlin date at UTC midnight
        ("2026-07-14T22:00:00.000Z", "2026-07-15"),  # Berlin midnight as a UTC instant (summer)
        ("2026-01-14T23:00:00Z", "2026-01-15"),  # ... and in winter
        ("2026-07-15T23:30:00+02:00", "2026-07-15"),
        ("2026-07-15T10:00", "2026-07-15"),  # no zone: its own date
    ],
)
def test_berlin_dates(raw, day):
    assert to_berlin_date(raw) == day


def test_datetime_columns_keep_the_api_text_and_widen_plain_dates():
    assert to_datetime("2026-10-30T08:13:04.000Z") == "2026-10-30T08:13:04.000Z"
    assert to_datetime("2026-10-30") == "2026-10-30T00:00:00+00:00"


def test_invoice_row_mapping(streams):
    raw = {
        "id": 100001,
        "number": "",
        "state": "locked",
        "type": "invoice",
        "title": "Rechnung",
        "date": "2026-07-14T22:00:00.000Z",
        "dueToDate": None,
        "lockedAt": "2026-07-15T08:00:00.000Z",
        "customerId": 5001,
        "customerData": {"name": "Müller & Söhne GmbH"},
        "totalNet": decimal.Decimal("100.00"),
        "totalGross": decimal.Decimal("119.00"),
        "outstandingAmount": decimal.Decimal("119.00"),
        "cashDiscountTotal": 0,
        "metaData": {"cancellation": {}, "currentDunning": {}, "nextDunning": {}},
    }
    record = streams["invoices"].map_row(raw)
    assert record["account"] == "acme"
    assert record["number"] is None
    assert record["date"] == "2026-07-15"
    assert record["status"] == "open"
    assert record["invoice_url"] == "https://app.invoiz.de/invoice/100001"
    assert record["customer_data"] == {"name": "Müller & Söhne GmbH"}
    assert record["extra_fields"] is None
    assert set(record) | {"_sdc_deleted_at"} == set(streams["invoices"].schema["properties"])


def test_odd_amounts_are_never_silently_altered(streams, caplog):
    stream = streams["invoices"]
    raw = {
        "id": 1,
        "state": "locked",
        "totalGross": "119.00",
        "totalNet": "1.234,56",
        "outstandingAmount": None,
        "cashDiscountTotal": True,
        "customerId": "5001",
        "date": "not a date",
    }
    with caplog.at_level(logging.WARNING):
        record = stream.map_row(raw)
    assert record["total_gross"] == decimal.Decimal("119.00")  # exact decimal text: converted losslessly ...
    assert record["total_net"] is None  # ... ambiguous text: null ...
    assert record["outstanding_amount"] is None
    assert record["cash_discount_total"] is None
    assert record["customer_id"] == 5001
    assert record["date"] is None
    # ... and every raw value that did not fit is kept verbatim
    assert record["extra_fields"] == {
        "totalGross": "119.00",
        "totalNet": "1.234,56",
        "cashDiscountTotal": True,
        "customerId": "5001",
        "date": "not a date",
    }
    assert record["status"] == "open"


def test_a_row_without_integer_id_fails_clearly():
    from singer_sdk.exceptions import FatalAPIError

    from tap_invoiz.ledger import row_id

    with pytest.raises(FatalAPIError, match="invoices: a row from invoice has no integer id"):
        row_id({"id": "abc"}, "invoices", "invoice")


def test_contact_flat_columns(streams):
    stream = streams["contacts"]
    raw = {
        "id": 5001,
        "number": "10001",
        "kind": "person",
        "name": "Jürgen Weiß",
        "firstName": "Jürgen",
        "lastName": "Weiß",
        "email": " J.Weiss@Example.DE ",
        "phone1": "",
        "mobile": "0171 1234567",
        "phone2": "030 1",
        "address": {"street": "Straße des 17. Juni 1", "zipCode": "10623", "city": "Berlin", "isoCountry": "DE"},
        "isArchived": False,
    }
    record = stream.map_row(raw)
    assert record["email"] == " J.Weiss@Example.DE "  # verbatim; dbt normalises
    assert (record["street"], record["zip_code"], record["city"], record["country_iso"]) == (
        "Straße des 17. Juni 1",
        "10623",
        "Berlin",
        "DE",
    )
    assert record["phone"] == "0171 1234567"
    assert record["contact_url"] == "https://app.invoiz.de/customer/5001"
    assert record["extra_fields"] == {"isArchived": False}
    assert set(record) | {"_sdc_deleted_at"} == set(stream.schema["properties"])


def test_schemas_follow_the_design_contract(streams):
    invoices = streams["invoices"].schema["properties"]
    assert invoices["id"]["type"] == ["integer"]
    assert "null" in invoices["number"]["type"] and invoices["date"]["format"] == "date"
    assert invoices["locked_at"]["format"] == "date-time" and invoices["total_gross"]["type"] == ["number", "null"]
    assert streams["invoices"].primary_keys == ["account", "id"]
    assert streams["contacts"].primary_keys == ["account", "id"]
    assert streams["invoice_payments"].primary_keys == ["account", "invoice_id", "id"]
    assert streams["sync_status"].primary_keys == ["account", "stream"]  # the tap's report, not API data
    for stream in (s for name, s in streams.items() if name != "sync_status"):
        assert stream.schema["properties"]["_sdc_deleted_at"]["format"] == "date-time"
        assert "extra_fields" in stream.schema["properties"]
        assert stream.replication_method == "FULL_TABLE"
