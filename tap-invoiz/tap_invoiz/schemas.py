"""The columns of tap-invoiz's streams (the column contract of docs/DESIGN.md): one field table per API object — the
one place to add an API field — and the JSON schemas built from them.
"""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

S = th.StringType
OBJ = th.ObjectType(additional_properties=True)


def _prop(name: str, kind: t.Any, description: str, *, required: bool = False) -> th.Property:
    return th.Property(name, kind, required=required, description=description)


def _meta_columns() -> list[th.Property]:
    return [
        _prop("extra_fields", OBJ, "API fields this schema does not know, verbatim with their API names (or null)"),
        _prop("_sdc_deleted_at", th.DateTimeType, "Set on tombstones: when the tap found the row deleted in invoiz"),
    ]


_KIND_TYPES: dict[str, t.Any] = {
    "integer": th.IntegerType,
    "number": th.NumberType,
    "string": S,
    "boolean": th.BooleanType,
    "date": th.DateType,
    "date-time": th.DateTimeType,
    "object": OBJ,
    "array": th.ArrayType(OBJ),
}


class Field(t.NamedTuple):
    """One API field: its name in invoiz, its column, its kind (see _KIND_TYPES) and the column's description;
    ``every_list_row``: docs/invoiz-api.md has it on every list row (False: on the detail, read from list rows only
    when they carry it). ``tap-invoiz --diagnose`` checks an account against these tables."""

    api: str
    column: str
    kind: str
    description: str
    every_list_row: bool = True


def _schema(keys: list[th.Property], fields: list[Field], derived: list[th.Property]) -> dict:
    """Key columns, then one column per API field, then columns the tap derives, then extra_fields/_sdc_deleted_at."""
    key_names = {key.name for key in keys}
    api_columns = [_prop(f.column, _KIND_TYPES[f.kind], f.description) for f in fields if f.column not in key_names]
    return th.PropertiesList(*keys, *api_columns, *derived, *_meta_columns()).to_dict()


INVOICE_FIELDS = [  # Field(API name, column, kind, description[, every_list_row]): the one place to add an API field
    Field("id", "id", "integer", "invoiz invoice id"),
    Field("number", "number", "string", "Invoice number (string, leading zeros kept); null for drafts"),
    Field("type", "type", "string", "invoice, depositInvoice, closingInvoice, recurringInvoice, ..."),
    Field(
        "state",
        "state",
        "string",
        "invoiz state, verbatim (draft, locked, partiallyPaid, paid, dunned, cancelled, ...)",
    ),
    Field("customerId", "customer_id", "integer", "invoiz customer (contact) id of the recipient"),
    Field("customerData", "customer_data", "object", "Snapshot of the recipient on the invoice (customerData)"),
    Field("title", "title", "string", "Invoice title"),
    Field("date", "date", "date", "Invoice date (Europe/Berlin calendar date)"),
    Field("dueToDate", "due_to_date", "date", "Due date (Europe/Berlin calendar date)"),
    Field("deliveryDate", "delivery_date", "date", "Delivery date (Europe/Berlin calendar date)", every_list_row=False),
    Field("lockedAt", "locked_at", "date-time", "When the invoice was finalised (festgeschrieben)"),
    Field("sentAt", "sent_at", "date-time", "When the invoice was sent", every_list_row=False),
    Field("paidDate", "paid_date", "date", "Date it was paid (Europe/Berlin calendar date)", every_list_row=False),
    Field("totalNet", "total_net", "number", "Net total, EUR"),
    Field("totalGross", "total_gross", "number", "Gross total, EUR"),
    Field("outstandingAmount", "outstanding_amount", "number", "Amount still open, EUR (0 when paid)"),
    Field("cashDiscountTotal", "cash_discount_total", "number", "Cash discount total, EUR"),
    Field("priceKind", "price_kind", "string", "net or gross", every_list_row=False),
    Field("payConditionId", "pay_condition_id", "integer", "Payment condition id", every_list_row=False),
    Field("metaData", "meta_data", "object", "metaData: cancellation, currentDunning, nextDunning"),
    Field("positions", "positions", "array", "Line items, when the list rows carry them", every_list_row=False),
    Field(
        "history",
        "history",
        "array",
        "State history ({state, date}), when the list rows carry it",
        every_list_row=False,
    ),
]

INVOICES_SCHEMA = _schema(
    [
        _prop("account", S, "Setting `account`: which invoiz installation the row comes from", required=True),
        _prop("id", th.IntegerType, "invoiz invoice id", required=True),
    ],
    INVOICE_FIELDS,
    [
        _prop("status", S, "Derived: draft | open | paid | cancelled | uncollectible | unknown"),
        _prop("invoice_url", S, "Link to the invoice in the invoiz web app"),
    ],
)

CONTACT_FIELDS = [  # Field(API name, column, kind, description): the one place to add an API field
    Field("id", "id", "integer", "invoiz customer id"),
    Field("number", "number", "string", "Customer number (Kundennummer), as a string"),
    Field("kind", "kind", "string", "company or person"),
    Field("name", "name", "string", "Display name (company name, or first and last name)"),
    Field("companyName", "company_name", "string", "Company name"),
    Field("companyNameAffix", "company_name_affix", "string", "Company name affix"),
    Field("salutation", "salutation", "string", "Salutation (Herr, Frau, ...)"),
    Field("title", "title", "string", "Title (Dr., ...)"),
    Field("firstName", "first_name", "string", "First name"),
    Field("lastName", "last_name", "string", "Last name"),
    Field("email", "email", "string", "E-mail address, verbatim (normalised only in dbt)"),
    Field("phone1", "phone1", "string", "phone1"),
    Field("phone2", "phone2", "string", "phone2"),
    Field("mobile", "mobile", "string", "mobile"),
    Field("fax", "fax", "string", "fax"),
    Field("website", "website", "string", "website"),
    Field("notes", "notes", "string", "Notes (HTML)"),
    Field("category", "category", "string", "Customer category"),
    Field("vatId", "vat_id", "string", "VAT id (USt-IdNr)"),
    Field("type", "type", "string", "customer or payee"),
    Field("address", "address", "object", "address, verbatim"),
    Field("contactPersons", "contact_persons", "array", "contactPersons"),
    Field("discount", "discount", "number", "Default discount"),
    Field("payConditionId", "pay_condition_id", "integer", "Payment condition id", every_list_row=False),
    Field("notesAlert", "notes_alert", "boolean", "Show the notes as an alert"),
]

CONTACTS_SCHEMA = _schema(
    [
        _prop("account", S, "Setting `account`: which invoiz installation the row comes from", required=True),
        _prop("id", th.IntegerType, "invoiz customer id", required=True),
    ],
    CONTACT_FIELDS,
    [
        _prop("street", S, "address.street (street and house number)"),
        _prop("zip_code", S, "address.zipCode"),
        _prop("city", S, "address.city"),
        _prop("country_iso", S, "address.countryIso, else address.isoCountry"),
        _prop("phone", S, "First non-empty of phone1, mobile, phone2"),
        _prop("contact_url", S, "Link to the contact in the invoiz web app"),
    ],
)

PAYMENT_FIELDS = [  # Field(API name, column, kind, description): the one place to add an API field
    Field("id", "id", "integer", "Payment id (its 1-based position in payments[] if invoiz sends no id)"),
    Field("date", "date", "date-time", "Payment date"),
    Field("amount", "amount", "number", "Amount, EUR"),
    Field("type", "type", "string", "payment, partial, discount, bankcharge, surcharge, credit, ..."),
    Field("notes", "notes", "string", "Notes"),
    Field("cancellationPaymentId", "cancellation_payment_id", "integer", "Set when the payment was reverted"),
]

PAYMENTS_SCHEMA = _schema(
    [
        _prop("account", S, "Setting `account`", required=True),
        _prop("invoice_id", th.IntegerType, "Invoice the payment belongs to", required=True),
        _prop(
            "id", th.IntegerType, "Payment id (its 1-based position in payments[] if invoiz sends no id)", required=True
        ),
    ],
    PAYMENT_FIELDS,
    [],
)

INT = th.IntegerType
SYNC_STATUS_SCHEMA = th.PropertiesList(  # the tap's own bookkeeping, not API fields: no extra_fields, no tombstones
    _prop("account", S, "Setting `account`", required=True),
    _prop("stream", S, "invoices, contacts or invoice_payments", required=True),
    _prop("run_id", S, "Identifies the tap run that wrote this row"),
    _prop("started_at", th.DateTimeType, "When the stream's sync started, before its first request (tap clock, UTC)"),
    _prop("completed_at", th.DateTimeType, "When the stream's sync completed"),
    _prop("full_refresh", th.BooleanType, "The run had no prior state for this account: every row in scope was sent"),
    _prop(
        "full_refresh_started_at",
        th.DateTimeType,
        "Set when this run completed a full refresh: rows of this account extracted earlier and not sent again are "
        "gone from invoiz (once full_refresh_rows rows extracted since then are in the table)",
    ),
    _prop("full_refresh_rows", INT, "Rows that full refresh left tracked: the commit check of staging"),
    _prop(
        "last_full_refresh_started_at",
        th.DateTimeType,
        "The latest earlier full refresh whose rows were all committed (from the state this run started from)",
    ),
    _prop("rows_listed", INT, "Distinct rows the listing returned"),
    _prop("records_emitted", INT, "Records sent (new, changed, deleted)"),
    _prop("new", INT, "New rows sent"),
    _prop("changed", INT, "Changed rows sent"),
    _prop("deleted", INT, "Tombstones sent"),
    _prop("tracked", INT, "Rows whose fingerprint the state keeps after the run"),
    _prop("requests", INT, "HTTP requests of this stream"),
    _prop("retries", INT, "Retried requests of this stream"),
).to_dict()
