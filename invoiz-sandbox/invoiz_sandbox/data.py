"""Deterministic, lazily generated invoiz dataset.

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

from __future__ import annotations

import copy
import datetime as dt
import functools
import math
import random
import threading
from array import array

from faker import Faker

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
def _e(cents: int) -> float:
    """Cents → JSON number in euros (always a float, e.g. 42.0)."""
    return round(cents / 100.0, 2)


def _gross(net_cents: int, vat: int) -> int:
    return (net_cents * (100 + vat) + 50) // 100


def _d(ordinal: int) -> str:
    return dt.date.fromordinal(ordinal).isoformat()


def _dt(ordinal: int, seconds: int) -> str:
    """A UTC timestamp: calendar day + seconds of day, ISO with milliseconds and Z."""
    seconds = max(0, min(86399, seconds))
    return f"{_d(ordinal)}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.000Z"


def _same(x):
    return x


def _slug(text: str) -> str:
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
def _index(label: str, ident, id_base: int) -> int:
    """The array index of an API id (``id_base + index + 1``); NotFound when it is no integer."""
    try:
        return int(ident) - id_base - 1
    except (TypeError, ValueError):
        raise NotFound(f"{label} {ident!r} not found") from None


class Dataset:
    """All sandbox data plus the scenario mutations.  Thread-safe through ``self.lock``."""

    def __init__(
        self,
        seed: int = 42,
        invoices: int = 200,
        contacts: int | None = None,
        today: str | dt.date | None = None,
        mix: str = "default",
    ):
        if invoices < 0:
            raise ValueError("invoices must be >= 0")
        if mix not in STATE_MIXES:
            raise ValueError(f"unknown mix {mix!r}; known: {sorted(STATE_MIXES)}")
        self.mix = mix
        self.seed = int(seed)
        self.n_base = int(invoices)
        self.nc_base = int(contacts) if contacts is not None else max(8, self.n_base // 5)
        if self.nc_base < 1:
            raise ValueError("contacts must be >= 1")
        if today is None:
            self.today = default_today(self.seed)
        elif isinstance(today, dt.date):
            self.today = today
        else:
            self.today = dt.date.fromisoformat(str(today)[:10])
        self.lock = threading.RLock()
        self.version = 0
        self._tick = 0  # minutes after 09:00 of "today" for mutation timestamps
        self._build_pools()
        self._build_invoices()
        # contacts
        self.c_deleted = bytearray(self.nc_base)
        self.c_over: dict[int, dict] = {}  # contact index -> canonical dict (materialised)
        self._snap_contact = functools.lru_cache(maxsize=4096)(
            functools.partial(self._gen_contact, snapshot_only=True)
        )  # read-only use
        self.nc = self.nc_base
        self._name_cache: list | None = None
        # mutation counters
        self._next_payment_id = NEW_PAYMENT_ID_BASE + 1
        self._next_cancellation_id = CANCELLATION_ID_BASE + 100000000 + 1
        self._sort_cache: dict = {}
        self._count_cache: dict = {}
        # raw API fields forced onto rows as served (bad-data tests): id -> {apiField: value}; see set_raw_fields
        self.raw_invoice_fields: dict[int, dict] = {}
        self.raw_contact_fields: dict[int, dict] = {}

    # ------------------------------------------------------------------ pools
    def _build_pools(self):
        fk = Faker("de_DE")
        fk.seed_instance(self.seed)
        self.p_first_m = sorted({fk.first_name_male() for _ in range(300)}) + ["Jörg", "Björn", "Jürgen"]
        self.p_first_f = sorted({fk.first_name_female() for _ in range(300)}) + ["Bärbel", "Jördis", "Gülşen"]
        self.p_last = sorted({fk.last_name() for _ in range(600)}) + FIXED_LAST
        forms = ["GmbH", "e.K.", "OHG", "GmbH & Co. KG"]
        self.p_company = sorted(
            {c if " " in c else f"{c} {forms[k % 4]}" for k, c in enumerate(fk.company() for _ in range(400))}
        )
        self.p_street = sorted({fk.street_address() for _ in range(600)}) + [
            "Große Straße 3",
            "Mühlenweg 12",
            "Schloßallee 7a",
        ]
        self.p_city = sorted({(fk.postcode(), fk.city()) for _ in range(400)}) + FIXED_CITIES_DE
        self.p_phone = sorted({fk.phone_number() for _ in range(400)})
        self.p_job = sorted({fk.job() for _ in range(120)})
        self.p_mail = ["gmx.de", "web.de", "t-online.de", "gmail.com", "posteo.de", "freenet.de", "outlook.de"]
        self.p_vat = [f"DE{fk.random_number(digits=9, fix_len=True)}" for _ in range(50)]

    # ------------------------------------------------------------------ invoices (compact arrays)
    def _build_invoices(self):
        n, nc = self.n_base, self.nc_base
        rnd = random.Random(self.seed * 7919 + 17)
        bits = rnd.getrandbits
        today = self.today.toordinal()
        span = max(90, min(3650, n // 2))
        start = today - span
        self.day = day = array("i", bytes(4 * n))  # int32 is plenty: ordinals, indices, numbers
        self.cust = cust = array("i", day)
        self.net = net = array("q", bytes(8 * n))
        self.gross = gross = array("q", bytes(8 * n))
        self.paid = paid = array("q", bytes(8 * n))
        self.num = num = array("i", day)
        self.due = due = bytearray(n)
        self.vat = vat = bytearray(n)
        self.state = state = bytearray(n)
        self.itype = itype = bytearray(n)
        self.cancel_no: dict[int, int] = {}
        number = 0
        n_cancel = 0
        log_lo, log_span = math.log(2000), math.log(2500000) - math.log(2000)
        mx = STATE_MIXES[self.mix]
        D, L, PP, P, DU, C = ST["draft"], ST["locked"], ST["partiallyPaid"], ST["paid"], ST["dunned"], ST["cancelled"]
        # every data set of >= 12 invoices has these cases, whatever the seed (tests rely on them)
        forced = {n - 1: D, n - 2: L, n - 3: PP, n // 2: C, n // 3: DU} if n >= 12 else {}
        backdated = n // 5 if n >= 12 else -1
        for i in range(n):
            r = bits(64)
            d = start + (i * span) // max(1, n)
            if r & 0x7F == 0 or i == backdated:  # ~0.8 % back-dated invoices
                d -= 1 + ((r >> 7) & 0x1F) + (20 if i == backdated else 0)
            day[i] = d
            u = ((r >> 12) & 0xFFFF) / 65536.0
            cust[i] = int(nc * u * u) if (r >> 28) & 1 else bits(32) % nc
            c = int(math.exp(log_lo + (((r >> 40) & 0xFFFF) / 65536.0) * log_span))
            if (r >> 56) & 3 == 0:
                c = c // 100 * 100
            net[i] = c
            v = 7 if (r >> 58) & 7 == 0 else 19
            vat[i] = v
            g = (c * (100 + v) + 50) // 100
            gross[i] = g
            dd = DUE_CHOICES[(r >> 61) & 7]
            due[i] = dd
            t = (r >> 8) & 0xF
            itype[i] = 0 if t < 13 else (1 if t == 13 else (2 if t == 14 else 3))
            age = today - d
            s = bits(16) / 65536.0
            if s < mx["draft"][0 if age <= 14 else 1]:
                st = D
            elif s > 1.0 - mx["cancelled"]:
                st = C
            else:
                s2 = bits(16) / 65536.0
                # old: nearly all settled; overdue; not yet due
                p_, pp_, du_ = mx["old"] if age > dd + 60 else mx["overdue"] if age > dd else mx["due"]
                st = P if s2 < p_ else PP if s2 < pp_ else DU if s2 < du_ else L
            st = forced.get(i, st)
            state[i] = st
            if st != D:
                number += 1
                num[i] = number
            if st == P:
                paid[i] = g
            elif st == PP:
                paid[i] = max(1, g * (20 + bits(6)) // 100)
            elif st == C:
                n_cancel += 1
                self.cancel_no[i] = n_cancel
        self.next_number = number + 1
        self.next_cancel_number = n_cancel + 1
        self.n = n
        self.i_over: dict[int, dict] = {}  # invoice index -> canonical dict (materialised)

    # ------------------------------------------------------------------ id helpers
    @staticmethod
    def inv_id(idx: int) -> int:
        return INVOICE_ID_BASE + idx + 1

    def inv_idx(self, invoice_id) -> int:
        idx = _index("invoice", invoice_id, INVOICE_ID_BASE)
        if not 0 <= idx < self.n or self.state[idx] == STATE_DELETED:
            raise NotFound(f"invoice {invoice_id} not found")
        return idx

    @staticmethod
    def con_id(idx: int) -> int:
        return CONTACT_ID_BASE + idx + 1

    def con_idx(self, contact_id) -> int:
        idx = _index("customer", contact_id, CONTACT_ID_BASE)
        if not 0 <= idx < self.nc or self.c_deleted[idx]:
            raise NotFound(f"customer {contact_id} not found")
        return idx

    def _rng(self, kind: int, ident: int) -> random.Random:
        return random.Random((self.seed << 48) ^ (kind << 40) ^ ident)

    # ------------------------------------------------------------------ clock
    def now_iso(self) -> str:
        """Timestamp for a mutation: today 09:00 UTC + one minute per mutation (deterministic)."""
        self._tick += 1
        return _dt(self.today.toordinal(), 9 * 3600 + 60 * self._tick)

    def advance_clock(self, days: int = 1):
        with self.lock:
            self.today += dt.timedelta(days=int(days))
            self._tick = 0
            self._touch()

    def _touch(self):
        self.version += 1
        self._sort_cache.clear()
        self._count_cache.clear()

    # ------------------------------------------------------------------ contacts (generation)
    def _contact_core(self, idx: int):
        rng = self._rng(2, idx)
        kind = "company" if rng.random() < 0.6 else "person"
        female = rng.random() < 0.5
        first = rng.choice(self.p_first_f if female else self.p_first_m)
        last = rng.choice(self.p_last)
        company = rng.choice(self.p_company) if kind == "company" else None
        if idx == 5:  # always present: umlaut and ß in a person's name
            kind, female, first, last, company = "person", False, "Jürgen", "Weiß", None
        return rng, kind, female, first, last, company

    def contact_name(self, idx: int) -> str:
        if idx in self.c_over:
            return self.c_over[idx].get("name") or ""
        _, kind, _, first, last, company = self._contact_core(idx)
        return company if kind == "company" else f"{first} {last}"

    def _base_email(self, idx: int) -> str:
        _, kind, _, first, last, company = self._contact_core(idx)
        if kind == "company":
            dom = _slug(company.split(" ")[0])[:20] or "firma"
            return f"{'info' if idx % 3 else 'buchhaltung'}@{dom}.de"
        return f"{_slug(first)}.{_slug(last)}@{self.p_mail[idx % len(self.p_mail)]}"

    def _gen_contact(self, idx: int, snapshot_only: bool = False) -> dict:
        """Generate a base contact. Fields an invoice snapshot needs come from the core RNG stream; the rest
        (e-mail quirks, phones, …) from a second stream, so ``snapshot_only=True`` is cheap."""
        rng, kind, female, first, last, company = self._contact_core(idx)
        cid = self.con_id(idx)
        country = "DE" if rng.random() < 0.9 else ("AT" if rng.random() < 0.6 else "CH")
        zc, city = rng.choice(self.p_city if country == "DE" else CITIES_AT if country == "AT" else CITIES_CH)
        street = rng.choice(self.p_street)
        if idx == 5:
            country, zc, city, street = "DE", "50667", "Köln", "Schloßallee 7a"
        title = "Dr." if rng.random() < 0.08 else ""
        affix = rng.choice(AFFIXES) if kind == "company" else None
        domain = (_slug(company.split(" ")[0])[:20] or "firma") + ".de" if kind == "company" else ""
        persons = []
        if kind == "company":
            for k in range(rng.choice((0, 1, 1, 2, 3))):
                pf = rng.random() < 0.5
                fn = rng.choice(self.p_first_f if pf else self.p_first_m)
                ln = rng.choice(self.p_last)
                pmail = "" if rng.random() < 0.25 else f"{_slug(fn)[0]}.{_slug(ln)}@{domain}"
                persons.append(
                    {
                        "id": cid * 10 + k + 1,
                        "salutation": "Frau" if pf else "Herr",
                        "title": "Dr." if rng.random() < 0.05 else "",
                        "firstName": fn,
                        "lastName": ln,
                        "name": f"{fn} {ln}",
                        "email": pmail,
                        "phone1": "",
                        "phone2": "",
                        "mobile": "",
                        "fax": "",
                        "job": "",
                        "birthday": None,
                        "isMainContact": k == 0,
                    }
                )
        c = {
            "id": cid,
            "number": str(CUSTOMER_NUMBER_BASE + idx + 1),
            "kind": kind,
            "name": company if kind == "company" else f"{first} {last}",
            "companyName": company,
            "companyNameAffix": affix,
            "salutation": "" if kind == "company" else ("Frau" if female else "Herr"),
            "title": "" if kind == "company" else title,
            "firstName": "" if kind == "company" else first,
            "lastName": "" if kind == "company" else last,
            "address": {"street": street, "zipCode": zc, "city": city, "countryIso": country},
            "contactPersons": persons,
        }
        if snapshot_only:
            return c
        r2 = self._rng(6, idx)
        q = r2.random()
        # the first contacts always cover the e-mail cases, whatever the seed (tests rely on them)
        q = {0: 0.5, 1: 0.25, 2: 0.05, 3: 0.15, 4: 0.05}.get(idx, q)
        if q < 0.12:  # no e-mail at all
            email = "" if r2.random() < 0.5 else None
            email = {2: None, 4: ""}.get(idx, email)
        elif q < 0.20 and idx > 0:  # shares the e-mail of an earlier contact (maybe other casing)
            other = self._base_email(0 if idx == 3 else r2.randrange(idx))
            email = other if r2.random() < 0.5 and idx != 3 else other.capitalize()
        elif q < 0.30:  # capitals and stray spaces
            base = self._base_email(idx)
            email = r2.choice([f" {base}", f"{base} ", base.title(), f"  {base.upper()} "])
        else:
            email = self._base_email(idx)
        for p in persons:
            p["phone1"] = r2.choice(self.p_phone)
            p["mobile"] = r2.choice(self.p_phone) if r2.random() < 0.4 else ""
            p["job"] = r2.choice(self.p_job)
        created = self.today.toordinal() - 30 - (self.nc_base - idx) * 3650 // max(1, self.nc_base)
        contact_persons = c.pop("contactPersons")
        c.update(
            {
                "email": email,
                "phone1": r2.choice(self.p_phone) if r2.random() < 0.7 else "",
                "phone2": r2.choice(self.p_phone) if r2.random() < 0.1 else "",
                "mobile": r2.choice(self.p_phone) if r2.random() < 0.35 else "",
                "fax": r2.choice(self.p_phone) if r2.random() < 0.1 else "",
                "website": f"https://www.{domain}" if kind == "company" and r2.random() < 0.5 else "",
                "contactPersons": contact_persons,
                "discount": 0.0 if r2.random() < 0.9 else float(r2.choice((2, 3, 5))),
                "payConditionId": None if r2.random() < 0.5 else 1,
                "notes": "" if r2.random() < 0.8 else "<p>Bitte Rechnungen nur per E-Mail senden.</p>",
                "notesAlert": False,
                "category": r2.choice(CATEGORIES),
                "vatId": r2.choice(self.p_vat) if kind == "company" and r2.random() < 0.5 else "",
                "type": "customer",
                "_created": _dt(created, 8 * 3600 + r2.randrange(36000)),
            }
        )
        return c

    def contact(self, idx: int) -> dict:
        """Canonical contact dict (shared for materialised rows: do not mutate the result)."""
        if idx in self.c_over:
            return self.c_over[idx]
        return self._gen_contact(idx)

    def _materialise_contact(self, idx: int) -> dict:
        if idx not in self.c_over:
            c = self._gen_contact(idx)
            c["_updated"] = c["_created"]
            c["_m"] = True
            self.c_over[idx] = c
        return self.c_over[idx]

    def customer_snapshot(self, contact: dict, draws: tuple | None = None) -> dict:
        a = contact.get("address") or {}
        snap = {
            "id": contact["id"],
            "kind": contact["kind"],
            "number": contact["number"],
            "name": contact["name"],
            "street": a.get("street", ""),
            "zipCode": a.get("zipCode", ""),
            "city": a.get("city", ""),
            "country": COUNTRY_LABEL.get(a.get("countryIso"), a.get("countryIso", "")),
            "countryIso": a.get("countryIso", ""),
            "salutation": contact.get("salutation", ""),
            "title": contact.get("title", ""),
            "firstName": contact.get("firstName", ""),
            "lastName": contact.get("lastName", ""),
            "description": "",
        }
        if contact["kind"] == "company":
            snap["companyName"] = contact.get("companyName")
            snap["companyNameAffix"] = contact.get("companyNameAffix")
            persons = contact.get("contactPersons") or []
            if persons and draws is not None and draws[0] < 0.4:
                p = persons[0]
                snap["contact"] = {
                    "id": p["id"],
                    "salutation": p["salutation"],
                    "title": p["title"],
                    "firstName": p["firstName"],
                    "lastName": p["lastName"],
                    "name": p["name"],
                }
                if p.get("email") and draws[1] < 0.6:
                    snap["contact"]["email"] = p["email"]
        return snap

    # ------------------------------------------------------------------ invoices (generation)
    def _positions(self, rng: random.Random, net_cents: int, vat: int, pid_base: int) -> list:
        k = min(rng.choice((1, 1, 2, 2, 3, 4)), max(1, net_cents // 100))
        parts, rest = [], net_cents
        for _ in range(k - 1):
            share = rest * rng.randint(20, 60) // 100
            parts.append(share)
            rest -= share
        parts.append(rest)
        out = []
        for j, cents in enumerate(parts):
            title, unit, _ = rng.choice(ARTICLES)
            qty = 1
            for q in (8, 5, 4, 3, 2):
                if cents % q == 0 and cents // q >= 100 and rng.random() < 0.5:
                    qty = q
                    break
            price = cents // qty
            out.append(
                {
                    "id": pid_base + j + 1,
                    "title": title,
                    "description": "",
                    "number": f"A-{100 + j:03d}",
                    "amount": float(qty),
                    "unit": unit,
                    "priceNet": _e(price),
                    "priceGross": _e(_gross(price, vat)),
                    "vatPercent": vat,
                    "discountPercent": 0,
                    "totalNet": _e(cents),
                    "totalGross": _e(_gross(cents, vat)),
                    "totalNetAfterDiscount": _e(cents),
                    "totalGrossAfterDiscount": _e(_gross(cents, vat)),
                    "showDescription": False,
                    "metaData": {
                        "type": "article",
                        "id": 3000 + j,
                        "number": f"A-{100 + j:03d}",
                        "purchasePrice": 0,
                        "calculationBase": "net",
                    },
                }
            )
        return out

    def _gen_invoice(self, idx: int, detail: bool = True) -> dict:
        """Generate a base invoice.  List fields come from one RNG stream, detail-only fields from another,
        so ``detail=False`` (list rows) is cheap and still identical to the detail's list fields."""
        iid = self.inv_id(idx)
        rng = self._rng(1, idx)  # list-level draws, fixed order
        created_s = 7 * 3600 + rng.randrange(10 * 3600)
        lock_off = rng.choice((0, 0, 0, 1, 2))
        lock_s_same, lock_s_other = created_s + 600 + rng.randrange(3600), 8 * 3600 + rng.randrange(30000)
        title = rng.choice(TITLES)
        snap_draws = (rng.random(), rng.random())
        dun_off, canc_off = rng.randrange(10), rng.randint(1, 30)
        d, st_code = self.day[idx], self.state[idx]
        state = STATES[st_code]
        net, vat, g = self.net[idx], self.vat[idx], self.gross[idx]
        dd = self.due[idx]
        today = self.today.toordinal()
        contact = self._snap_contact(self.cust[idx])  # snapshot of the contact as it was (base data; read-only)
        locked_at = None
        lock_day = None
        meta = {"cancellation": {}, "currentDunning": {}, "nextDunning": {}}
        cur = cday = None
        if state != "draft":
            lock_day = min(today, d + lock_off)
            locked_at = _dt(lock_day, lock_s_same if lock_day == d else lock_s_other)
            if state == "dunned":
                cur = min(today, d + dd + 7 + dun_off)
                meta["currentDunning"] = {"date": _d(cur), "label": DUNNING_LEVELS[0][1]}
                meta["nextDunning"] = {
                    "date": _d(cur + 14),
                    "dunningLevel": DUNNING_LEVELS[1][0],
                    "label": DUNNING_LEVELS[1][1],
                }
            if state == "cancelled":
                cday = min(today, lock_day + canc_off)
                meta["cancellation"] = {
                    "id": CANCELLATION_ID_BASE + idx + 1,
                    "number": f"ST-{self.cancel_no.get(idx, 0):04d}",
                    "date": _d(cday),
                    "totalNet": _e(net),
                    "totalGross": _e(g),
                }
        outstanding = 0 if state in ("paid", "cancelled") else g - self.paid[idx]
        snap = self.customer_snapshot(contact, snap_draws)
        inv = {
            "id": iid,
            "number": None if state == "draft" else f"{self.num[idx]:04d}",
            "state": state,
            "type": TYPES[self.itype[idx]],
            "title": title,
            "date": _d(d),
            "dueToDate": _d(d + dd),
            "lockedAt": locked_at,
            "customerId": contact["id"],
            "customerData": snap,
            "totalNet": _e(net),
            "totalGross": _e(g),
            "outstandingAmount": _e(outstanding),
            "cashDiscountTotal": 0.0,
            "metaData": meta,
            "_created": _dt(d, created_s),
        }
        if not detail:
            return inv
        rd = self._rng(5, idx)  # detail-only draws
        history = [{"state": "draft", "date": inv["_created"]}]
        sent_at = paid_date = None
        payments = []
        if state != "draft":
            history.append({"state": "locked", "date": locked_at})
            if rd.random() < 0.7:
                sent_at = _dt(lock_day, min(86399, int(locked_at[11:13]) * 3600 + 900))
                history.append({"state": rd.choice(("sent", "sent", "printed", "downloaded")), "date": sent_at})
            paid_cents = self.paid[idx]
            if paid_cents:
                horizon = max(1, min(today - lock_day, dd + 40))
                pay_day = min(today, lock_day + rd.randint(1, horizon))
                split = state == "paid" and rd.random() < 0.2 and paid_cents > 1000
                amounts = [paid_cents * 4 // 10, paid_cents - paid_cents * 4 // 10] if split else [paid_cents]
                days = [max(lock_day, pay_day - rd.randint(1, 20)), pay_day] if split else [pay_day]
                for k, (amt, pd) in enumerate(zip(amounts, days)):
                    done = state == "paid" and k == len(amounts) - 1
                    payments.append(
                        {
                            "id": iid * 10 + k + 1,
                            "date": _d(pd),
                            "amount": _e(amt),
                            "type": "payment" if done else "partial",
                            "notes": "",
                            "invoiceId": iid,
                            "cancellationPaymentId": None,
                            "financeApiBankTransactionId": None,
                        }
                    )
                    history.append(
                        {"state": "paid" if done else "partiallyPaid", "date": _dt(pd, 10 * 3600 + rd.randrange(20000))}
                    )
                if state == "paid":
                    paid_date = _d(days[-1])
            if cur is not None:
                history.append({"state": "dunned", "date": _dt(cur, 11 * 3600)})
            if cday is not None:
                history.append({"state": "cancelled", "date": _dt(cday, 12 * 3600)})
        pc = PAY_CONDITIONS[dd]
        inv.update(
            {
                "deliveryDate": _d(d),
                "deliveryPeriod": "",
                "sentAt": sent_at,
                "paidDate": paid_date,
                "printDate": None,
                "contactPersonId": snap.get("contact", {}).get("id"),
                "priceKind": "net",
                "payConditionId": pc["id"],
                "payConditionData": dict(pc),
                "positions": self._positions(rd, net, vat, iid * 100),
                "payments": payments,
                "history": history,
                "texts": {
                    "introduction": "Vielen Dank für Ihren Auftrag. Wir berechnen Ihnen folgende Leistungen:",
                    "conclusion": f"Zahlbar {'sofort' if dd == 0 else f'innerhalb von {dd} Tagen'} ohne Abzug. "
                    "Mit freundlichen Grüßen",
                },
                "infoSectionCustomFields": [],
                "discount": 0.0,
                "vatAmountStandard": _e(g - net) if vat == 19 else 0.0,
                "vatAmountReduced": _e(g - net) if vat == 7 else 0.0,
                "cashDiscountSetting": {"active": False, "type": "percentage", "amount": 0, "days": 0},
                "autoDunningEnabled": False,
                "dunningLevel": meta["nextDunning"].get("dunningLevel"),
                "smallBusiness": False,
                "notes": "",
            }
        )
        return inv

    def invoice_canonical(self, idx: int, detail: bool = True) -> dict:
        """Canonical invoice dict (do not mutate the result). ``detail=False``: list fields only."""
        if idx in self.i_over:
            return self.i_over[idx]
        return self._gen_invoice(idx, detail)

    def _materialise(self, idx: int) -> dict:
        if idx not in self.i_over:
            inv = self._gen_invoice(idx)
            inv["_m"] = True
            self.i_over[idx] = inv
        return self.i_over[idx]

    # ------------------------------------------------------------------ rendering
    def render_invoice(self, inv: dict, variants, *, list_row: bool = False) -> dict:
        # generated rows are fresh objects; only materialised (stored) rows must be copied
        cp = copy.deepcopy if inv.get("_m") else _same
        fmt = (
            "date_only"
            if "date_only" in variants
            else "berlin_midnight"
            if "berlin_midnight" in variants
            else "utc_midnight"
        )
        if list_row:
            keys = [
                "id",
                "number",
                "state",
                "type",
                "title",
                "date",
                "dueToDate",
                "lockedAt",
                "customerId",
                "customerData",
                "totalNet",
                "totalGross",
                "outstandingAmount",
                "cashDiscountTotal",
                "metaData",
            ]
            if "lean_list" in variants:
                keys = [k for k in keys if k not in ("title", "lockedAt")]
            if "list_positions" in variants:
                keys.append("positions")
            out = {k: cp(inv[k]) for k in keys}
        else:
            out = {k: cp(v) for k, v in inv.items() if not k.startswith("_")}
        for k in ("date", "dueToDate", "deliveryDate", "paidDate"):
            if k in out:
                out[k] = render_date(out[k], fmt)
        for p in out.get("payments") or []:
            p["date"] = render_date(p.get("date"), fmt)
        for k in ("cancellation", "currentDunning", "nextDunning"):
            m = out["metaData"].get(k)
            if m and m.get("date"):
                m["date"] = render_date(m["date"], fmt)
        if out.get("state") == "draft" and "draft_number_empty" in variants:
            out["number"] = ""
        if "updated_at" in variants:
            out["createdAt"] = inv.get("_created")
            hist = [h["date"] for h in inv.get("history") or []]
            out["updatedAt"] = inv.get("_updated") or max(hist + [inv.get("_created") or ""])
        if "extra_fields" in variants:
            out["currency"] = "EUR"
            out["isMigrated"] = False
            out["customFields"] = {"kostenstelle": f"KST-{inv['id'] % 7}"}
        raw = self.raw_invoice_fields.get(inv["id"])
        if raw:
            out.update(copy.deepcopy(raw))
        return out

    def render_contact(self, c: dict, variants) -> dict:
        cp = copy.deepcopy if c.get("_m") else _same
        out = {k: cp(v) for k, v in c.items() if not k.startswith("_")}
        if "iso_country" in variants and isinstance(out.get("address"), dict):
            a = out["address"]
            out["address"] = {("isoCountry" if k == "countryIso" else k): v for k, v in a.items()}
        if "no_customer_email" in variants:
            out.pop("email", None)
        if "updated_at" in variants:
            out["createdAt"] = c.get("_created")
            out["updatedAt"] = c.get("_updated") or c.get("_created")
        if "extra_fields" in variants:
            out["isArchived"] = False
            out["lastActivity"] = c.get("_updated") or c.get("_created")
        raw = self.raw_contact_fields.get(c["id"])
        if raw:
            out.update(copy.deepcopy(raw))
        return out

    def set_raw_fields(self, kind: str, ident, fields: dict) -> int:
        """Force raw API fields (any JSON value, also wrong types, NUL characters, unknown names; ``None`` = JSON
        null) onto one invoice or contact exactly as list rows and detail answers serve them. Bookkeeping (state,
        amounts, sort orders, filter counts) is left alone: this is bad data *from the API*, for tests of the client.
        ``fields=None`` removes the overrides of that row."""
        if kind not in ("invoice", "contact"):
            raise SandboxError("kind must be invoice or contact", field="kind")
        if fields is not None and (not isinstance(fields, dict) or "id" in fields):
            raise SandboxError("fields must be an object without id", field="fields")
        with self.lock:
            if kind == "invoice":
                row_id, store = self.inv_id(self.inv_idx(ident)), self.raw_invoice_fields
            else:
                row_id, store = self.con_id(self.con_idx(ident)), self.raw_contact_fields
            if fields is None:
                store.pop(row_id, None)
            else:
                store.setdefault(row_id, {}).update(copy.deepcopy(fields))
            self._touch()
            return row_id

    # ------------------------------------------------------------------ list queries
    def _inv_key_fn(self, order_by: str):
        if order_by in (None, "", "id"):
            return None
        if order_by == "date":
            return self.day.__getitem__
        if order_by == "dueToDate":
            day, due = self.day, self.due
            return lambda i: day[i] + due[i]
        if order_by == "totalNet":
            return self.net.__getitem__
        if order_by == "totalGross":
            return self.gross.__getitem__
        if order_by == "number":
            return self.num.__getitem__
        if order_by == "type":
            t = self.itype
            return lambda i: TYPES[t[i]]
        if order_by == "customerData.name":
            names = self._contact_names()
            cust, over = self.cust, self.i_over

            def key(i):
                inv = over.get(i)
                return (inv["customerData"]["name"] if inv else names[cust[i]]).casefold()

            return key
        raise SandboxError(f"orderBy {order_by!r} is not supported", field="orderBy", code="INVALID")

    def _contact_names(self) -> list:
        if self._name_cache is None:  # base names only: invoice snapshots never change
            self._name_cache = [self._base_name(i) for i in range(self.nc_base)]
        return self._name_cache

    def _base_name(self, idx):
        if idx >= self.nc_base:
            return self.c_over[idx]["name"]
        _, kind, _, first, last, company = self._contact_core(idx)
        return company if kind == "company" else f"{first} {last}"

    def _filter_pred(self, flt: str):
        state, today = self.state, self.today.toordinal()
        if flt == "all":
            return lambda i: state[i] != STATE_DELETED
        if flt == "open":  # internal: locked, partiallyPaid, dunned (variant locked_includes_dunned)
            return lambda i: state[i] in OPEN_CODES
        if flt == "overdue":
            day, due = self.day, self.due
            return lambda i: state[i] in OPEN_CODES and day[i] + due[i] < today
        code = ST.get(flt)
        if code is None:
            raise SandboxError(f"filter {flt!r} is not supported", field="filter", code="INVALID")
        return lambda i: state[i] == code

    def invoice_order(self, order_by, desc, flt) -> array:
        key = ("inv", order_by or "id", bool(desc), flt)
        hit = self._sort_cache.get(key)
        if hit is not None:
            return hit
        kf = self._inv_key_fn(order_by)
        pred = self._filter_pred(flt)
        if kf is None:
            idxs = range(self.n - 1, -1, -1) if desc else range(self.n)
            res = array("i", (i for i in idxs if pred(i)))
        else:
            if flt == "all":
                cand = (
                    [i for i in range(self.n) if self.state[i] != STATE_DELETED]
                    if self.state.count(STATE_DELETED)
                    else list(range(self.n))
                )
            else:
                cand = [i for i in range(self.n) if pred(i)]
            cand.sort(key=kf, reverse=bool(desc))
            res = array("i", cand)
        self._sort_cache[key] = res
        return res

    def invoice_filter_counts(self) -> dict:
        hit = self._count_cache.get("inv")
        if hit is not None:
            return hit
        st = self.state
        counts = {f: {"count": st.count(ST[f])} for f in INVOICE_FILTERS if f in ST}
        counts["all"] = {"count": self.n - st.count(STATE_DELETED)}
        today = self.today.toordinal()
        day, due = self.day, self.due
        counts["overdue"] = {"count": sum(1 for i in range(self.n) if st[i] in OPEN_CODES and day[i] + due[i] < today)}
        ordered = {f: counts[f] for f in INVOICE_FILTERS}
        self._count_cache["inv"] = ordered
        return ordered

    def search_invoices(self, order: array, text: str) -> list:
        """searchText: case-insensitive substring of the invoice number or the recipient name."""
        t = text.casefold()
        out = []
        for i in order:
            inv = self.i_over.get(i)
            if inv is not None:
                hay = f"{inv.get('number') or ''} {inv['customerData'].get('name', '')}"
            else:
                hay = (
                    f"{self.num[i]:04d} {self._base_name(self.cust[i])}"
                    if self.num[i]
                    else self._base_name(self.cust[i])
                )
            if t in hay.casefold():
                out.append(i)
        return out

    def contact_order(self, order_by, desc) -> array:
        key = ("con", order_by or "id", bool(desc))
        hit = self._sort_cache.get(key)
        if hit is not None:
            return hit
        cand = [i for i in range(self.nc) if not self.c_deleted[i]]
        if order_by in (None, "", "id"):
            if desc:
                cand.reverse()
        elif order_by == "name":
            cand.sort(key=lambda i: self.contact_name(i).casefold(), reverse=bool(desc))
        elif order_by == "number":
            cand.sort(key=lambda i: str(CUSTOMER_NUMBER_BASE + i + 1), reverse=bool(desc))
        else:
            raise SandboxError(f"orderBy {order_by!r} is not supported", field="orderBy", code="INVALID")
        res = array("l", cand)
        self._sort_cache[key] = res
        return res

    def search_contacts(self, order: array, text: str) -> list:
        t = text.casefold()
        out = []
        for i in order:
            c = self.contact(i)
            if t in f"{c['number']} {c['name']} {c.get('email') or ''}".casefold():
                out.append(i)
        return out

    # ------------------------------------------------------------------ scenario actions: invoices
    def _add_history(self, inv, state):
        inv["history"].append({"state": state, "date": self.now_iso()})
        inv["_updated"] = inv["history"][-1]["date"]

    def _sync_arrays(self, idx, inv):
        self.state[idx] = ST[inv["state"]]
        self.paid[idx] = sum(round(p["amount"] * 100) for p in inv["payments"] if not p.get("cancellationPaymentId"))
        self._touch()

    def _recompute(self, idx, inv):
        if inv["state"] in ("draft", "cancelled"):
            self._sync_arrays(idx, inv)
            return
        gross = round(inv["totalGross"] * 100)
        paid = sum(round(p["amount"] * 100) for p in inv["payments"] if not p.get("cancellationPaymentId"))
        out = max(0, gross - paid)
        inv["outstandingAmount"] = _e(out)
        old = inv["state"]
        if out == 0:
            new = "paid"
        elif old == "dunned" or inv["metaData"].get("currentDunning"):
            new = "dunned"
        elif paid > 0:
            new = "partiallyPaid"
        else:
            new = "locked"
        if new == "paid":
            active = [p["date"] for p in inv["payments"] if not p.get("cancellationPaymentId")]
            inv["paidDate"] = max(active) if active else self.today.isoformat()
            inv["metaData"]["nextDunning"] = {}
            inv["dunningLevel"] = None
        else:
            inv["paidDate"] = None
        if new != old:
            inv["state"] = new
            self._add_history(inv, new)
        else:
            inv["_updated"] = self.now_iso()
        self._sync_arrays(idx, inv)

    def create_invoice(
        self,
        customer_id=None,
        state="locked",
        amount=None,
        date=None,
        due_days=14,
        title=None,
        vat=19,
        type="invoice",
        net=None,
    ) -> int:
        """Create an invoice (optionally back-dated) and bring it into ``state``. Returns its id."""
        if state not in ST:
            raise SandboxError(f"unknown state {state!r}", field="state")
        if type not in TYPES:
            raise SandboxError(f"unknown type {type!r}", field="type")
        with self.lock:
            if customer_id is None:
                cidx = self.version % self.nc
                while self.c_deleted[cidx]:
                    cidx = (cidx + 1) % self.nc
            else:
                cidx = self.con_idx(customer_id)
            contact = self.contact(cidx)
            d = dt.date.fromisoformat(str(date)[:10]) if date else self.today
            if isinstance(date, dt.date):
                d = date
            vat = int(vat)
            if net is not None:
                net_c = round(float(net) * 100)
                gross_c = _gross(net_c, vat)
            elif amount is not None:
                gross_c = round(float(amount) * 100)
                net_c = round(gross_c * 100 / (100 + vat))
            else:
                net_c = 10000 + (self.version * 3137) % 200000
                gross_c = _gross(net_c, vat)
            if gross_c <= 0:
                raise SandboxError("amount must be positive", field="amount", code="NOT_POSITIVE")
            idx = self.n
            iid = self.inv_id(idx)
            rng = self._rng(3, idx)
            dd = int(due_days)
            pc = dict(
                PAY_CONDITIONS.get(
                    dd, {"id": 9, "name": f"{dd} Tage netto", "dueDays": dd, "isBasic": False, "isInstant": dd == 0}
                )
            )
            now = self.now_iso()
            snap = self.customer_snapshot(contact, None)
            inv = {
                "id": iid,
                "number": None,
                "state": "draft",
                "type": type,
                "title": title if title is not None else "Rechnung",
                "date": d.isoformat(),
                "dueToDate": (d + dt.timedelta(days=dd)).isoformat(),
                "deliveryDate": d.isoformat(),
                "deliveryPeriod": "",
                "lockedAt": None,
                "sentAt": None,
                "paidDate": None,
                "printDate": None,
                "customerId": contact["id"],
                "customerData": snap,
                "contactPersonId": None,
                "totalNet": _e(net_c),
                "totalGross": _e(gross_c),
                "outstandingAmount": _e(gross_c),
                "cashDiscountTotal": 0.0,
                "priceKind": "net",
                "payConditionId": pc["id"],
                "payConditionData": pc,
                "positions": self._positions(rng, net_c, vat, iid * 100),
                "payments": [],
                "history": [{"state": "draft", "date": now}],
                "metaData": {"cancellation": {}, "currentDunning": {}, "nextDunning": {}},
                "texts": {"introduction": "Vielen Dank für Ihren Auftrag.", "conclusion": "Mit freundlichen Grüßen"},
                "infoSectionCustomFields": [],
                "discount": 0.0,
                "vatAmountStandard": _e(gross_c - net_c) if vat == 19 else 0.0,
                "vatAmountReduced": _e(gross_c - net_c) if vat == 7 else 0.0,
                "cashDiscountSetting": {"active": False, "type": "percentage", "amount": 0, "days": 0},
                "autoDunningEnabled": False,
                "dunningLevel": None,
                "smallBusiness": False,
                "notes": "",
                "_created": now,
                "_updated": now,
                "_m": True,
            }
            self.day.append(d.toordinal())
            self.cust.append(cidx)
            self.net.append(net_c)
            self.gross.append(gross_c)
            self.paid.append(0)
            self.num.append(0)
            self.due.append(max(0, min(255, dd)))
            self.vat.append(vat)
            self.state.append(ST["draft"])
            self.itype.append(TYPES.index(type))
            self.n += 1
            self.i_over[idx] = inv
            self._touch()
            if state != "draft":
                self.lock_invoice(iid)
            if state == "paid":
                self.pay(iid)
            elif state == "partiallyPaid":
                self.pay(iid, amount=round(gross_c / 200.0, 2) or 0.01)
            elif state == "dunned":
                self.dun(iid)
            elif state == "cancelled":
                self.cancel(iid)
            return iid

    def lock_invoice(self, invoice_id):
        """Finalise a draft: assigns the next number and lockedAt."""
        with self.lock:
            idx = self.inv_idx(invoice_id)
            inv = self._materialise(idx)
            if inv["state"] != "draft":
                raise SandboxError("only drafts can be locked", field="state", code="NOT_ALLOWED")
            number = self.next_number
            self.next_number += 1
            self.num[idx] = number
            inv["number"] = f"{number:04d}"
            inv["state"] = "locked"
            self._add_history(inv, "locked")
            inv["lockedAt"] = inv["history"][-1]["date"]
            self._sync_arrays(idx, inv)
            return inv["id"]

    def _invoice_that_can_be(self, done: str, invoice_id, states: tuple[str, ...]) -> tuple[int, dict]:
        """The invoice's index and materialised row, if it is in one of ``states``; else SandboxError NOT_ALLOWED."""
        idx = self.inv_idx(invoice_id)
        inv = self._materialise(idx)
        if inv["state"] not in states:
            raise SandboxError(f"invoice in state {inv['state']} cannot be {done}", field="state", code="NOT_ALLOWED")
        return idx, inv

    def pay(self, invoice_id, amount=None, type=None, date=None, notes=""):
        """Record a payment (amount=None → the full outstanding amount). Returns the payment id."""
        with self.lock:
            idx, inv = self._invoice_that_can_be("paid", invoice_id, OPEN_STATES)
            out = round(inv["outstandingAmount"] * 100)
            cents = out if amount is None else round(float(amount) * 100)
            if cents <= 0:
                raise SandboxError("amount must be positive", field="amount", code="NOT_POSITIVE")
            if cents > out:
                raise SandboxError("amount exceeds the outstanding amount", field="amount", code="TOO_LARGE")
            pid = self._next_payment_id
            self._next_payment_id += 1
            ptype = type or ("payment" if cents == out else "partial")
            inv["payments"].append(
                {
                    "id": pid,
                    "date": str(date)[:10] if date else self.today.isoformat(),
                    "amount": _e(cents),
                    "type": ptype,
                    "notes": notes,
                    "invoiceId": inv["id"],
                    "cancellationPaymentId": None,
                    "financeApiBankTransactionId": None,
                }
            )
            self._recompute(idx, inv)
            return pid

    def partly_pay(self, invoice_id, amount=None, **kw):
        """A partial payment (default: half of the outstanding amount)."""
        with self.lock:
            idx = self.inv_idx(invoice_id)
            inv = self.invoice_canonical(idx)
            out = round(inv["outstandingAmount"] * 100)
            if amount is None:
                amount = max(1, out // 2) / 100.0
            if round(float(amount) * 100) >= out:
                raise SandboxError(
                    "a partial payment must be less than the outstanding amount", field="amount", code="TOO_LARGE"
                )
            return self.pay(invoice_id, amount=amount, type="partial", **kw)

    def revert_payment(self, invoice_id, payment_id=None):
        """Revert (cancel) a payment: it gets cancellationPaymentId; state/outstanding are recomputed."""
        with self.lock:
            idx = self.inv_idx(invoice_id)
            inv = self._materialise(idx)
            if inv["state"] == "cancelled":
                raise SandboxError(
                    "payments of a cancelled invoice cannot be reverted", field="state", code="NOT_ALLOWED"
                )
            active = [p for p in inv["payments"] if not p.get("cancellationPaymentId")]
            if payment_id is not None:
                active = [p for p in active if p["id"] == int(payment_id)]
            if not active:
                raise NotFound("no such active payment", field="paymentId")
            p = active[-1]
            p["cancellationPaymentId"] = self._next_payment_id
            self._next_payment_id += 1
            self._recompute(idx, inv)
            return p["id"]

    def dun(self, invoice_id):
        """Send the next dunning level (Zahlungserinnerung → 1. Mahnung → …); state becomes dunned."""
        with self.lock:
            idx, inv = self._invoice_that_can_be("dunned", invoice_id, OPEN_STATES)
            cur = inv["metaData"].get("currentDunning") or {}
            labels = [lab for _, lab in DUNNING_LEVELS]
            level = labels.index(cur["label"]) + 1 if cur.get("label") in labels else 0
            level = min(level, len(DUNNING_LEVELS) - 1)
            inv["metaData"]["currentDunning"] = {"date": self.today.isoformat(), "label": DUNNING_LEVELS[level][1]}
            if level + 1 < len(DUNNING_LEVELS):
                nxt = DUNNING_LEVELS[level + 1]
                inv["metaData"]["nextDunning"] = {
                    "date": (self.today + dt.timedelta(days=14)).isoformat(),
                    "dunningLevel": nxt[0],
                    "label": nxt[1],
                }
                inv["dunningLevel"] = nxt[0]
            else:
                inv["metaData"]["nextDunning"] = {}
            inv["state"] = "dunned"
            self._add_history(inv, "dunned")
            self._sync_arrays(idx, inv)
            return inv["id"]

    def cancel(self, invoice_id):
        """Cancel (Storno): state cancelled, outstanding 0, metaData.cancellation {id, number, date, totals}."""
        with self.lock:
            idx, inv = self._invoice_that_can_be("cancelled", invoice_id, (*OPEN_STATES, "paid"))
            cid = self._next_cancellation_id
            self._next_cancellation_id += 1
            number = self.next_cancel_number
            self.next_cancel_number += 1
            inv["metaData"]["cancellation"] = {
                "id": cid,
                "number": f"ST-{number:04d}",
                "date": self.today.isoformat(),
                "totalNet": inv["totalNet"],
                "totalGross": inv["totalGross"],
            }
            inv["metaData"]["nextDunning"] = {}
            inv["outstandingAmount"] = 0.0
            inv["state"] = "cancelled"
            self._add_history(inv, "cancelled")
            self._sync_arrays(idx, inv)
            return cid

    def delete_invoice(self, invoice_id, finalised=False):
        """Delete a draft; with ``finalised=True`` also a locked or dunned invoice (the web app's "cancel/delete"
        on unpaid finalised invoices sends ``DELETE invoice/{id}``, docs/invoiz-api.md §6.1). Paid, partially paid and
        cancelled invoices are never deleted."""
        with self.lock:
            idx = self.inv_idx(invoice_id)
            inv = self.invoice_canonical(idx)
            allowed = ("draft", "locked", "dunned") if finalised else ("draft",)
            if inv["state"] not in allowed:
                raise SandboxError(
                    "only drafts (and, finalised=True, locked or dunned invoices) can be deleted",
                    field="state",
                    code="NOT_ALLOWED",
                )
            self.state[idx] = STATE_DELETED
            self.i_over.pop(idx, None)
            self._touch()
            return int(invoice_id)

    def update_invoice(self, invoice_id, **fields):
        """Edit a draft (title, amount/net, date, due_days, customer_id). Finalised invoices are immutable."""
        with self.lock:
            idx = self.inv_idx(invoice_id)
            inv = self._materialise(idx)
            if inv["state"] != "draft":
                raise SandboxError("finalised invoices cannot be edited", field="state", code="NOT_ALLOWED")
            vat = self.vat[idx]
            if "title" in fields:
                inv["title"] = fields.pop("title")
            if "date" in fields:
                d = dt.date.fromisoformat(str(fields.pop("date"))[:10])
                inv["date"] = inv["deliveryDate"] = d.isoformat()
                inv["dueToDate"] = (d + dt.timedelta(days=self.due[idx])).isoformat()
                self.day[idx] = d.toordinal()
            if "due_days" in fields:
                dd = int(fields.pop("due_days"))
                self.due[idx] = dd
                inv["dueToDate"] = (dt.date.fromisoformat(inv["date"]) + dt.timedelta(days=dd)).isoformat()
            if "amount" in fields or "net" in fields:
                if "net" in fields:
                    net_c = round(float(fields.pop("net")) * 100)
                    gross_c = _gross(net_c, vat)
                else:
                    gross_c = round(float(fields.pop("amount")) * 100)
                    net_c = round(gross_c * 100 / (100 + vat))
                self.net[idx], self.gross[idx] = net_c, gross_c
                inv["totalNet"], inv["totalGross"], inv["outstandingAmount"] = _e(net_c), _e(gross_c), _e(gross_c)
                inv["positions"] = self._positions(self._rng(4, idx), net_c, vat, inv["id"] * 100)
            if "customer_id" in fields:
                cidx = self.con_idx(fields.pop("customer_id"))
                self.cust[idx] = cidx
                inv["customerId"] = self.con_id(cidx)
                inv["customerData"] = self.customer_snapshot(self.contact(cidx), None)
            if fields:
                raise SandboxError(f"unknown fields {sorted(fields)}", field="fields")
            inv["_updated"] = self.now_iso()
            self._sync_arrays(idx, inv)
            return inv["id"]

    # ------------------------------------------------------------------ scenario actions: contacts
    _ALIASES = {
        "email": "email",
        "first_name": "firstName",
        "last_name": "lastName",
        "company_name": "companyName",
        "company_name_affix": "companyNameAffix",
        "zip_code": "zipCode",
        "country_iso": "countryIso",
        "vat_id": "vatId",
        "notes_alert": "notesAlert",
        "pay_condition_id": "payConditionId",
        "contact_persons": "contactPersons",
    }
    _ADDRESS_KEYS = ("street", "zipCode", "city", "countryIso")

    def _apply_contact_fields(self, c: dict, fields: dict):
        for k, v in fields.items():
            k = self._ALIASES.get(k, k)
            if k in ("id", "number") and "id" in c:
                raise SandboxError(f"{k} cannot be changed", field=k, code="NOT_ALLOWED")
            if k in self._ADDRESS_KEYS:
                c.setdefault("address", {})[k] = v
            elif k == "address" and isinstance(v, dict):
                c.setdefault("address", {}).update(v)
            else:
                c[k] = v
        if c.get("kind") == "company":
            c["name"] = c.get("companyName") or c.get("name") or ""
        elif any(k in fields for k in ("firstName", "lastName", "first_name", "last_name")) or not c.get("name"):
            c["name"] = f"{c.get('firstName') or ''} {c.get('lastName') or ''}".strip()

    def create_contact(self, kind="person", **fields) -> int:
        if kind not in ("company", "person"):
            raise SandboxError("kind must be company or person", field="kind")
        with self.lock:
            idx = self.nc
            now = self.now_iso()
            c = {
                "id": self.con_id(idx),
                "number": str(CUSTOMER_NUMBER_BASE + idx + 1),
                "kind": kind,
                "name": "",
                "companyName": None,
                "companyNameAffix": None,
                "salutation": "",
                "title": "",
                "firstName": "",
                "lastName": "",
                "address": {"street": "", "zipCode": "", "city": "", "countryIso": "DE"},
                "email": None,
                "phone1": "",
                "phone2": "",
                "mobile": "",
                "fax": "",
                "website": "",
                "contactPersons": [],
                "discount": 0.0,
                "payConditionId": None,
                "notes": "",
                "notesAlert": False,
                "category": "",
                "vatId": "",
                "type": "customer",
                "_created": now,
                "_updated": now,
                "_m": True,
            }
            if kind == "company" and not (fields.get("companyName") or fields.get("company_name")):
                fields.setdefault("companyName", "Neue Firma GmbH")
            if kind == "person" and not any(k in fields for k in ("firstName", "first_name", "lastName", "last_name")):
                fields.setdefault("firstName", "Erika")
                fields.setdefault("lastName", "Mustermann")
            self._apply_contact_fields(c, fields)
            self.c_over[idx] = c
            self.c_deleted.append(0)
            self.nc += 1
            self._touch()
            return c["id"]

    def update_contact(self, contact_id, **fields):
        with self.lock:
            idx = self.con_idx(contact_id)
            c = self._materialise_contact(idx)
            self._apply_contact_fields(c, fields)
            c["_updated"] = self.now_iso()
            self._touch()
            return c["id"]

    def set_contact_email(self, contact_id, email):
        return self.update_contact(contact_id, email=email)

    def delete_contact(self, contact_id):
        with self.lock:
            idx = self.con_idx(contact_id)
            self.c_deleted[idx] = 1
            self._touch()
            return int(contact_id)

    # ------------------------------------------------------------------ page-shift helper
    def insert_before(self, order_by, desc, count):
        """Create ``count`` invoices that sort at the very beginning of the given (orderBy, desc) order."""
        ids = []
        for _ in range(int(count)):
            kw = {}
            ob = order_by or "id"
            first_day = min(self.day) if self.n else self.today.toordinal()
            if ob in ("date", "dueToDate"):
                kw["date"] = self.today + dt.timedelta(days=1) if desc else dt.date.fromordinal(first_day - 1)
                kw["due_days"] = 60 if desc else 0
            elif ob in ("totalNet", "totalGross"):
                kw["net"] = 999999.0 if desc else 0.01
            # id / number / name / type: a new invoice sorts first only when desc (ids grow)
            ids.append(self.create_invoice(state="locked", **kw))
        return ids
