"""Deterministic, lazily generated invoiz dataset (the package's parts: values, dataset, contacts, invoices, rendering,
listing, invoice_actions, contact_actions).

Design (so that 1,000,000 invoices start in seconds and fit in tens of MB):

* Small Faker('de_DE') pools (names, streets, cities, companies, ...) are built once from the seed.
* Per invoice only a handful of compact arrays are kept (date, customer, amount, VAT, state, paid cents,
  due days, number, type).  They are filled by one sequential pass of ``random.Random(seed)``.
* Everything else of a row (positions, payments, history, customer snapshot, ...) is generated on demand
  from ``random.Random(<integer derived from seed and id>)`` - identical across processes, no ``hash()``.
* Mutations (scenario control) *materialise* the affected row into a dict kept in memory; the compact
  arrays are updated so that sorting, filtering and counting stay correct.

The canonical (internal) form of a row is the API JSON with calendar dates as ``YYYY-MM-DD`` strings;
:meth:`Dataset.render_invoice` / :meth:`Dataset.render_contact` apply the date format and contract variants.
"""

from .dataset import Dataset
from .values import (
    AFFIXES,
    ARTICLES,
    CANCELLATION_ID_BASE,
    CATEGORIES,
    CITIES_AT,
    CITIES_CH,
    CONTACT_ID_BASE,
    CONTACT_ORDER_BY,
    COUNTRY_LABEL,
    CUSTOMER_NUMBER_BASE,
    DUE_CHOICES,
    DUNNING_LEVELS,
    FIXED_CITIES_DE,
    FIXED_LAST,
    INVOICE_FILTERS,
    INVOICE_ID_BASE,
    INVOICE_ORDER_BY,
    NEW_PAYMENT_ID_BASE,
    OPEN_CODES,
    OPEN_STATES,
    PAY_CONDITIONS,
    ST,
    STATE_DELETED,
    STATE_MIXES,
    STATES,
    TITLES,
    TYPES,
    NotFound,
    SandboxError,
    default_today,
    render_date,
)

__all__ = [
    "Dataset",
    "INVOICE_ID_BASE",
    "CONTACT_ID_BASE",
    "CUSTOMER_NUMBER_BASE",
    "CANCELLATION_ID_BASE",
    "NEW_PAYMENT_ID_BASE",
    "STATE_DELETED",
    "STATES",
    "ST",
    "OPEN_STATES",
    "OPEN_CODES",
    "INVOICE_FILTERS",
    "TYPES",
    "INVOICE_ORDER_BY",
    "CONTACT_ORDER_BY",
    "STATE_MIXES",
    "DUNNING_LEVELS",
    "PAY_CONDITIONS",
    "DUE_CHOICES",
    "ARTICLES",
    "TITLES",
    "AFFIXES",
    "CATEGORIES",
    "FIXED_LAST",
    "FIXED_CITIES_DE",
    "CITIES_AT",
    "CITIES_CH",
    "COUNTRY_LABEL",
    "SandboxError",
    "NotFound",
    "render_date",
    "default_today",
]
