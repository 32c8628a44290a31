"""The dataset's vocabulary: the API's states, filters and sort keys, the generator's word pools, the
errors a scenario action raises, and the small money/date helpers every part of the dataset uses."""

from __future__ import annotations

import datetime as dt

# ---------------------------------------------------------------------------------------------- constants
INVOICE_ID_BASE = 100000  # invoice id = INVOICE_ID_BASE + index + 1
CONTACT_ID_BASE = 5000  # contact id = CONTACT_ID_BASE + index + 1
CUSTOMER_NUMBER_BASE = 10000  # customer number = str(CUSTOMER_NUMBER_BASE + index + 1)
CANCELLATION_ID_BASE = 800000000
NEW_PAYMENT_ID_BASE = 700000000

STATE_DELETED = 0
STATES = ["", "draft", "locked", "partiallyPaid", "paid", "dunned", "cancelled"]
ST = {name: code for code, name in enumerate(STATES) if name}
OPEN_STATES = ("locked", "partiallyPaid", "dunned")  # finalised and not (fully) paid: can be paid and dunned
OPEN_CODES = (ST["locked"], ST["partiallyPaid"], ST["dunned"])
INVOICE_FILTERS = ["all", "draft", "locked", "partiallyPaid", "paid", "dunned", "cancelled", "overdue"]
TYPES = ["invoice", "depositInvoice", "closingInvoice", "recurringInvoice", "recurringInvoiceTemplate"]
INVOICE_ORDER_BY = ["id", "date", "dueToDate", "totalNet", "totalGross", "customerData.name", "number", "type"]
CONTACT_ORDER_BY = ["id", "name", "number"]
#: State mixes of the generated invoices, by age (see the README, "Data set"). Per mix: share of drafts (recent /
#: older than 14 days), share of cancelled, then (paid, partiallyPaid, dunned) cumulative thresholds for invoices
#: older than due + 60 days, overdue ones and not yet due ones (the rest is locked; not-yet-due ones are never dunned).
STATE_MIXES = {
    "default": {
        "draft": (0.15, 0.01),
        "cancelled": 0.03,
        "old": (0.965, 0.975, 0.99),
        "overdue": (0.70, 0.80, 0.90),
        "due": (0.35, 0.45, 0.45),
    },
    # ≈ 80 % paid, ≈ 4 % cancelled, ≈ 15 % open: an account that also keeps old unpaid invoices open
    "realistic": {
        "draft": (0.15, 0.005),
        "cancelled": 0.04,
        "old": (0.85, 0.88, 0.95),
        "overdue": (0.60, 0.70, 0.90),
        "due": (0.30, 0.40, 0.40),
    },
}

DUNNING_LEVELS = [
    ("paymentReminder", "Zahlungserinnerung"),
    ("firstReminder", "1. Mahnung"),
    ("secondReminder", "2. Mahnung"),
    ("lastReminder", "Letzte Mahnung"),
]
PAY_CONDITIONS = {
    7: {"id": 2, "name": "7 Tage netto", "dueDays": 7, "isBasic": False, "isInstant": False},
    14: {"id": 1, "name": "14 Tage netto", "dueDays": 14, "isBasic": True, "isInstant": False},
    30: {"id": 3, "name": "30 Tage netto", "dueDays": 30, "isBasic": False, "isInstant": False},
    0: {"id": 4, "name": "Sofort ohne Abzug", "dueDays": 0, "isBasic": False, "isInstant": True},
}
DUE_CHOICES = (14, 14, 14, 30, 30, 7, 0, 14)

ARTICLES = [
    ("Beratung (Stundensatz)", "Std.", 9500),
    ("Wartung Heizungsanlage", "Pauschal", 18900),
    ("Webdesign Startseite", "Pauschal", 120000),
    ("Übersetzung Deutsch–Englisch", "Seite", 4500),
    ("Schulung Tagessatz", "Tag", 89000),
    ("Softwarelizenz Jahresabo", "Stk.", 29900),
    ("Fahrtkosten", "km", 50),
    ("Montage vor Ort", "Std.", 6800),
    ("Größenänderung Maßanfertigung", "Stk.", 3500),
    ("Büromaterial", "Stk.", 1290),
    ("Fußbodenverlegung", "m²", 3900),
    ("Gerüststellung", "Tag", 25000),
    ("Straßenreinigung Außenbereich", "Pauschal", 15000),
    ("Fotoshooting Produktbilder", "Std.", 12000),
    ("Hosting Premium", "Monat", 1999),
    ("Grafikdesign Logo", "Pauschal", 65000),
]
TITLES = [
    "Rechnung",
    "Rechnung",
    "Rechnung",
    "Wartungsvertrag",
    "Projekt Webshop",
    "Leistungen Oktober",
    "Schulung Grundlagen",
    "Reparatur Türschloss",
    "Übersetzungsauftrag",
    "Beratungsleistungen",
    "",
]
AFFIXES = ["", "", "", "Niederlassung Süd", "c/o Buchhaltung", "Zweigstelle Köln", "Büro Straßburg"]
CATEGORIES = ["", "Stammkunde", "Neukunde", "Großhandel", "Öffentliche Hand"]
FIXED_LAST = ["Müller", "Weiß", "Groß", "Schäfer", "Öztürk", "Jäger", "Strauß", "Köhler", "Bäcker", "Fußmann"]
FIXED_CITIES_DE = [
    ("50667", "Köln"),
    ("80331", "München"),
    ("40213", "Düsseldorf"),
    ("35390", "Gießen"),
    ("90403", "Nürnberg"),
    ("10115", "Berlin"),
]
CITIES_AT = [("1010", "Wien"), ("8010", "Graz"), ("5020", "Salzburg")]
CITIES_CH = [("8001", "Zürich"), ("3011", "Bern"), ("4051", "Basel")]
COUNTRY_LABEL = {"DE": "Deutschland", "AT": "Österreich", "CH": "Schweiz"}
_TRANSLIT = str.maketrans(
    {
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "ß": "ss",
        "Ä": "Ae",
        "Ö": "Oe",
        "Ü": "Ue",
        " ": "",
        "'": "",
        ",": "",
        "&": "",
        "/": "",
    }
)


class SandboxError(Exception):
    """A scenario action or request that invoiz would refuse (mapped to HTTP 400/404)."""

    def __init__(self, message, field="id", code="INVALID", status=400):
        super().__init__(message)
        self.field, self.code, self.status = field, code, status


class NotFound(SandboxError):
    def __init__(self, message="not found", field="id"):
        super().__init__(message, field=field, code="NOT_FOUND", status=404)


# ---------------------------------------------------------------------------------------------- helpers
def euros(cents: int) -> float:
    """Cents → JSON number in euros (always a float, e.g. 42.0)."""
    return round(cents / 100.0, 2)


def gross_of(net_cents: int, vat: int) -> int:
    return (net_cents * (100 + vat) + 50) // 100


def day_text(ordinal: int) -> str:
    return dt.date.fromordinal(ordinal).isoformat()


def timestamp_text(ordinal: int, seconds: int) -> str:
    """A UTC timestamp: calendar day + seconds of day, ISO with milliseconds and Z."""
    seconds = max(0, min(86399, seconds))
    return f"{day_text(ordinal)}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.000Z"


def unchanged(x):
    return x


def slug(text: str) -> str:
    return text.lower().translate(_TRANSLIT).replace(".", "").replace("-", "")


def _berlin_offset_hours(day: dt.date) -> int:
    try:
        from zoneinfo import ZoneInfo

        return int(
            dt.datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo("Europe/Berlin")).utcoffset().total_seconds()
            // 3600
        )
    except Exception:  # pragma: no cover - no tzdata: EU rule, last Sunday of March/October

        def last_sunday(month):
            d = dt.date(day.year, month, 31)
            return d - dt.timedelta(days=(d.weekday() + 1) % 7)

        return 2 if last_sunday(3) <= day < last_sunday(10) else 1


def invoice_detail_tail(net_cents: int, gross_cents: int, vat: int, dunning_level) -> dict:
    """The last fields of an invoice's detail (VAT split, settings every sandbox invoice shares), in the API's order:
    the same for a generated and a created invoice."""
    return {
        "infoSectionCustomFields": [],
        "discount": 0.0,
        "vatAmountStandard": euros(gross_cents - net_cents) if vat == 19 else 0.0,
        "vatAmountReduced": euros(gross_cents - net_cents) if vat == 7 else 0.0,
        "cashDiscountSetting": {"active": False, "type": "percentage", "amount": 0, "days": 0},
        "autoDunningEnabled": False,
        "dunningLevel": dunning_level,
        "smallBusiness": False,
        "notes": "",
    }


def render_date(value, fmt: str):
    """Canonical 'YYYY-MM-DD' → API form. fmt: 'utc_midnight' (default), 'date_only', 'berlin_midnight'."""
    if not value:
        return value
    if fmt == "date_only":
        return value
    if fmt == "berlin_midnight":
        day = dt.date.fromisoformat(value)
        start = dt.datetime(day.year, day.month, day.day) - dt.timedelta(hours=_berlin_offset_hours(day))
        return start.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return f"{value}T00:00:00.000Z"


def default_today(seed: int) -> dt.date:
    return dt.date(2026, 6, 1) + dt.timedelta(days=seed % 153)


# ---------------------------------------------------------------------------------------------- dataset
def index_of_id(label: str, ident, id_base: int) -> int:
    """The array index of an API id (``id_base + index + 1``); NotFound when it is no integer."""
    try:
        return int(ident) - id_base - 1
    except (TypeError, ValueError):
        raise NotFound(f"{label} {ident!r} not found") from None
