"""``tap-invoiz --diagnose``: a read-only first contact with an invoiz account.

Eighteen requests — the token, the first page of each list with and without ``limit``, one page per invoice filter
with ``limit=1``, one invoice and one contact detail, one unknown id, a request with a bad token, the payment
conditions — and a Markdown report of how this invoiz answers compared with the contract the tap was built on
(field names and JSON types, envelopes, paging, filters, date and id forms, the not-found form, auth, latency), with a
verdict per item:

* ✅ as expected;
* ⚠️ differs, but the tap handles it (the line says how);
* ❌ blocks a correct sync (the line says what to do);
* ➖ could not be checked on this account (e.g. no draft invoices).

Exit status: 0 (nothing ❌), 1 (something ❌), 2 (cannot connect or authenticate; the message names the setting).

Nothing secret or personal goes into the report or the log: no credential, token, name, e-mail, address, amount or
invoice number — values are never copied, only field names, JSON types, forms (``YYYY-MM-DD``), counts and HTTP
statuses. Ids appear only as counts. Only GET requests are sent, plus the token POST.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import logging
import statistics
import time
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlparse

import requests

from tap_invoiz import auth as auth_module
from tap_invoiz.auth import CREDENTIAL_SETTINGS, InvoizAuthenticator, retry_after_seconds
from tap_invoiz.client import is_not_found
from tap_invoiz.errors import InvoizConfigError
from tap_invoiz.records import BERLIN, OPEN_STATES, Unconvertible, parse_iso, to_integer
from tap_invoiz.streams import CONTACT_FIELDS, INVOICE_FIELDS

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

LOGGER = logging.getLogger("tap-invoiz.diagnose")

OK, WARN, FAIL, SKIP = "✅", "⚠️", "❌", "➖"
VERDICTS = (OK, WARN, FAIL, SKIP)
SECTIONS = ("Authentication", "Paging", "Invoice list", "Invoice detail", "Contacts", "Filters", "Formats", "Latency",
            "Other endpoints")

#: The largest page the tap may ask for (setting page_size); the diagnosis asks for it to find a silent cap.
PROBE_LIMIT = 1000
#: docs/invoiz-api.md §3.1: the default page size is believed to be 20.
CONTRACT_DEFAULT_LIMIT = 20
#: An invoice id that no account has (fits a 32-bit integer, so a server that checks the type still looks it up).
UNKNOWN_ID = 2147483000
STATE_FILTERS = ("draft", "locked", "partiallyPaid", "paid", "dunned", "cancelled")
FILTERS = (*STATE_FILTERS, "overdue")

# -- what the contract says about fields (docs/invoiz-api.md §4 and §5) -----------------------------------

#: §4.1 fields marked "L": every invoice list row should carry them.
INVOICE_LIST_EXPECTED = (
    "id", "number", "state", "type", "title", "date", "dueToDate", "lockedAt", "customerId", "customerData",
    "totalNet", "totalGross", "outstandingAmount", "cashDiscountTotal", "metaData",
)
#: §4.1 fields marked "D (L?)": the contract expects them on the detail only (open question 2).
INVOICE_LIST_MAYBE = ("positions", "payments", "history")
#: §4.1 fields the detail should carry (✅ and the 🟡 ones the web app reads).
INVOICE_DETAIL_EXPECTED = (
    *INVOICE_LIST_EXPECTED, "deliveryDate", "sentAt", "paidDate", "contactPersonId", "priceKind", "payConditionId",
    "payConditionData", "positions", "payments", "history", "texts", "infoSectionCustomFields",
)
#: §4.1 fields the contract knows but does not expect on every answer.
INVOICE_KNOWN = (
    "deliveryPeriod", "printDate", "discount", "totalGrossProfit", "vatAmountReduced", "vatAmountStandard",
    "cashDiscountSetting", "autoDunningEnabled", "dunningLevel", "dunningRecipients", "overDueNotificationSent",
    "smallBusiness", "smallBusinessText", "notes", "offer", "offerId", "project", "projectId", "parentId",
    "recurringInvoiceId", "invoizPayData", "useAdvancedPaymentOptions", "useAdvancedPaymentPayPal",
    "useAdvancedPaymentTransfer", "hideInvoizPay", "letterPaperSettingId", "letterNumerationId", "columns",
    "thumbnails", "printCustomDocument", "infoSectionFields",
    # fork-only (Groflex), probably absent in Germany
    "totalDiscount", "additionalCharges", "exchangeRate", "baseCurrency", "razorpayPaymentData",
)
#: §5: customer fields, list rows and detail alike.
CONTACT_EXPECTED = (
    "id", "number", "kind", "name", "companyName", "companyNameAffix", "salutation", "title", "firstName", "lastName",
    "address", "email", "phone1", "phone2", "mobile", "fax", "website", "contactPersons", "discount", "payConditionId",
    "notes", "notesAlert", "category", "vatId", "type",
)
CONTACT_KNOWN = (
    "birthday", "contactType", "mandator", "vatFree", "outstandingAmount", "balance", "openingBalance", "credits",
    "debits", "salesVolumeData",
)
TIMESTAMP_FIELDS = ("createdAt", "updatedAt")
#: Objects whose member names are shown (one level, arrays of objects as ``name[].member``). Unknown objects are not
#: opened: their member names may be labels a user typed.
OPENED = {
    "customerData", "customerData.contact", "metaData", "metaData.cancellation", "metaData.currentDunning",
    "metaData.nextDunning", "positions[]", "positions[].metaData", "payments[]", "history[]", "payConditionData",
    "texts", "cashDiscountSetting", "address", "contactPersons[]",
}
CALENDAR_DATES = (
    "date", "dueToDate", "deliveryDate", "paidDate", "payments[].date", "metaData.cancellation.date",
    "metaData.currentDunning.date", "metaData.nextDunning.date",
)
DATE_TIMES = ("lockedAt", "sentAt", "printDate", "history[].date", "createdAt", "updatedAt")
MONEY = ("totalNet", "totalGross", "outstandingAmount", "cashDiscountTotal")
#: Loggers that would write request URLs (with ids) at DEBUG.
QUIET_LOGGERS = ("urllib3", "urllib3.connectionpool", "requests")
RATE_LIMIT_HEADERS = ("retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                      "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy")

@dataclass
class Finding:
    key: str
    section: str
    verdict: str
    title: str
    text: str

    def line(self) -> str:
        return f"- {self.verdict} **{self.title}** — {self.text}"


@dataclass
class Probe:
    """One HTTP request: what was asked (no secret, no id) and what came back (parsed body kept in memory only)."""

    label: str
    status: int | None = None
    ms: float = 0.0
    body: t.Any = None
    json_ok: bool = False
    error: str | None = None
    retries: int = 0
    not_found: bool = False  # 404, or 400 whose body says NOT_FOUND (the tap's rule)
    rate_limited: int = 0  # HTTP 429 answers, retried ones included
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.json_ok

    @property
    def data(self) -> t.Any:
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def meta(self) -> t.Any:
        return self.body.get("meta") if isinstance(self.body, dict) else None

    @property
    def rows(self) -> list[dict]:
        data = self.data
        return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []

    @property
    def count(self) -> int | None:
        meta = self.meta
        value = meta.get("count") if isinstance(meta, dict) else None
        if value is None or isinstance(value, bool):
            return None
        try:
            return to_integer(value)
        except Unconvertible:
            return None


class CannotConnect(Exception):  # noqa: N818 - a reason to stop, with the message for the user
    """Exit status 2: the API cannot be reached or the credentials are rejected; the message names the setting."""


# -- helpers that never look at values beyond their form ----------------------------------------------------------------


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, (float, decimal.Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def census(objects: Iterable[dict]) -> tuple[int, dict[str, Counter]]:
    """(number of objects, field path → Counter of JSON types); member names only of :data:`OPENED` objects."""
    fields: dict[str, Counter] = {}
    total = 0

    def visit(obj: dict, prefix: str) -> None:
        for name, value in obj.items():
            path = f"{prefix}{name}"
            fields.setdefault(path, Counter())[json_type(value)] += 1
            if isinstance(value, dict) and path in OPENED:
                visit(value, path + ".")
            elif isinstance(value, list) and f"{path}[]" in OPENED:
                for item in value:
                    if isinstance(item, dict):
                        visit(item, f"{path}[].")

    for obj in objects:
        total += 1
        visit(obj, "")
    return total, fields


def values_at(objects: Iterable[dict], path: str) -> Iterable[object]:
    """Every value at ``path`` (``a.b``, ``a[].b``) in ``objects``; used for forms and types, never copied out."""
    parts = path.split(".")

    def walk(value: object, rest: list[str]) -> Iterable[object]:
        if not rest:
            yield value
            return
        head, tail = rest[0], rest[1:]
        if head.endswith("[]"):
            items = value.get(head[:-2]) if isinstance(value, dict) else None
            for item in items if isinstance(items, list) else []:
                yield from walk(item, tail)
        elif isinstance(value, dict) and head in value:
            yield from walk(value[head], tail)

    for obj in objects:
        yield from walk(obj, parts)


def date_form(value: object) -> str:
    """The form of a date text: ``YYYY-MM-DD``, UTC midnight, Berlin midnight, a date-time with/without zone."""
    if not isinstance(value, str):
        return f"JSON {json_type(value)}"
    text = value.strip()
    if not text:
        return "empty string"
    try:
        parsed = parse_iso(text)
    except Unconvertible:
        return "unreadable"
    if not isinstance(parsed, dt.datetime):
        return "YYYY-MM-DD"
    if parsed.tzinfo is None:
        return "date-time without zone"
    utc = parsed.astimezone(dt.timezone.utc)
    if utc.time() == dt.time(0):
        return "UTC midnight (…T00:00:00Z)"
    if parsed.astimezone(BERLIN).time() == dt.time(0):
        return "Berlin midnight as UTC instant (…T22/23:00:00Z)"
    return "date-time with zone"


def _plural(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number:,} {singular if number == 1 else (plural or singular + 's')}"


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _types(counter: Counter) -> str:
    return ", ".join(f"{kind} {number}" if len(counter) > 1 else kind for kind, number in counter.most_common())


def token_form(token: str) -> tuple[str, str | None]:
    """A description of the token's form (never the token) and, for a JWT with ``exp`` and ``iat``, its lifetime."""
    parts = token.split(".")
    if len(parts) == 3:  # noqa: PLR2004
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, TypeError):
            payload = None
        if isinstance(payload, dict):
            claims = sorted(str(name) for name in payload)
            lifetime = None
            exp, iat = payload.get("exp"), payload.get("iat")
            if isinstance(exp, (int, float)) and isinstance(iat, (int, float)) and exp > iat:
                lifetime = f"{int(exp - iat):,} s"
            return f"a JWT with claims {_names(claims)}", lifetime
    kind = "hexadecimal" if all(c in "0123456789abcdefABCDEF" for c in token) else "opaque"
    return f"an {kind} string of {len(token)} characters", None


# -- the requests ---------------------------------------------------------------------------------------------------


class RecordingSession(requests.Session):
    """A requests session that times every request and keeps, for the token request, only the answer's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.token_probes: list[Probe] = []

    def request(self, method: str | bytes, url: str | bytes, *args: t.Any, **kwargs: t.Any) -> requests.Response:
        started = time.monotonic()
        probe = Probe(label="POST auth/token")
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.exceptions.RequestException as exc:
            probe.error = type(exc).__name__
            probe.ms = (time.monotonic() - started) * 1000
            if str(url).endswith("auth/token"):
                self.token_probes.append(probe)
            raise
        probe.ms = (time.monotonic() - started) * 1000
        if str(url).endswith("auth/token"):
            probe.status = response.status_code
            try:
                body = response.json()
            except ValueError:
                body = None
            probe.json_ok = isinstance(body, dict)
            # keep the names and JSON types of the members, never the token itself
            probe.body = {name: json_type(value) for name, value in body.items()} if isinstance(body, dict) else None
            probe.headers = _rate_limit_headers(response)
            self.token_probes.append(probe)
        return response


def _rate_limit_headers(response: requests.Response) -> dict[str, str]:
    """Rate-limit headers (numbers and policies, nothing personal), at most 40 characters each."""
    return {name: response.headers[name][:40] for name in RATE_LIMIT_HEADERS if name in response.headers}


class Prober:
    """Read-only GETs with the tap's token handling: one re-authentication on 401; retries on 429, 5xx and
    connection errors with the tap's backoff (1, 2, 4 ... s or Retry-After, capped at 10 s), at most twice."""

    def __init__(self, config: Mapping[str, t.Any]) -> None:
        url = str(config.get("api_url") or "https://app.invoiz.de/api/")
        self.api_url = url if url.endswith("/") else url + "/"
        retries = config.get("max_retries")
        self.max_retries = min(2, max(0, int(5 if retries is None else retries)))
        self.timeout = min(30.0, float(config.get("request_timeout") or 60))
        self.session = RecordingSession()
        auth_config = {**config, "api_url": self.api_url, "max_retries": self.max_retries, "request_timeout": self.timeout}
        self.authenticator = InvoizAuthenticator(auth_config, session=self.session)
        from tap_invoiz import __version__

        self.headers = {"Accept": "application/json", "User-Agent": config.get("user_agent") or f"tap-invoiz/{__version__}"}
        self.probes: list[Probe] = []

    def token(self) -> str:
        try:
            return self.authenticator.token
        except InvoizConfigError as exc:
            raise CannotConnect(str(exc)) from None

    def get(self, path: str, params: Mapping[str, t.Any] | None = None, *, label_path: str | None = None,
            token: str | None = None) -> Probe:
        """GET ``path`` relative to api_url. ``label_path`` replaces an id in the label; ``token`` sends that token
        instead of the real one (and no re-authentication)."""
        query = urlencode(params or {})
        label = f"GET {label_path or path}" + (f"?{query}" if query else "")
        probe = Probe(label=label)
        reauthenticated = False
        attempt = 0
        while True:
            attempt += 1
            bearer = token if token is not None else self.token()
            started = time.monotonic()
            try:
                response = self.session.get(
                    self.api_url + path, params=params, timeout=self.timeout,
                    headers={**self.headers, "Authorization": f"Bearer {bearer}"},
                )
            except requests.exceptions.RequestException as exc:
                probe.ms = (time.monotonic() - started) * 1000
                probe.error = type(exc).__name__
                probe.status = None
                if attempt > self.max_retries:
                    break
                self._wait(None, attempt, probe)
                continue
            probe.ms = (time.monotonic() - started) * 1000
            probe.status = response.status_code
            probe.headers = _rate_limit_headers(response)
            probe.error = None
            if response.status_code == 401 and token is None and not reauthenticated:  # noqa: PLR2004
                reauthenticated = True
                self.authenticator.invalidate(bearer)
                continue
            if response.status_code == 429:  # noqa: PLR2004
                probe.rate_limited += 1
            if (response.status_code == 429 or response.status_code >= 500) and attempt <= self.max_retries:  # noqa: PLR2004
                self._wait(response, attempt, probe)
                continue
            probe.not_found = is_not_found(response)
            try:
                probe.body = json.loads(response.text, parse_float=decimal.Decimal)
                probe.json_ok = True
            except ValueError:
                probe.body = None
                probe.json_ok = False
            break
        self.probes.append(probe)
        rows = f", {_plural(len(probe.rows), 'row')}" if isinstance(probe.data, list) else ""
        LOGGER.info("diagnose: %s → %s in %.0f ms%s", probe.label, probe.status or probe.error, probe.ms, rows)
        return probe

    def _wait(self, response: requests.Response | None, attempt: int, probe: Probe) -> None:
        probe.retries += 1
        wait = retry_after_seconds(response, cap=10.0)
        if wait is None:
            wait = min(auth_module.BACKOFF_BASE * 2.0 ** (attempt - 1), 10.0)
        LOGGER.warning("diagnose: %s failed (%s); retrying in %.1f s", probe.label,
                       response.status_code if response is not None else probe.error, wait)
        time.sleep(wait)


# -- the diagnosis ----------------------------------------------------------------------------------------------------


@dataclass
class Report:
    findings: list[Finding]
    tables: dict[str, list[str]]
    probes: list[Probe]
    api: str
    started: str
    fatal: str | None = None

    @property
    def exit_code(self) -> int:
        if self.fatal is not None:
            return 2
        return 1 if any(f.verdict == FAIL for f in self.findings) else 0

    def finding(self, key: str) -> Finding:
        for item in self.findings:
            if item.key == key:
                return item
        raise KeyError(key)

    def verdicts(self) -> dict[str, str]:
        return {f.key: f.verdict for f in self.findings}

    def render(self) -> str:
        from tap_invoiz import __version__

        counts = Counter(f.verdict for f in self.findings)
        out = [
            "# invoiz diagnosis for tap-invoiz",
            "",
            f"tap-invoiz {__version__} · API `{self.api}` · {self.started} · "
            f"{_plural(len(self.probes), 'request')} (read-only)",
            "",
        ]
        if self.fatal is not None:
            out += [f"**{FAIL} Cannot connect or authenticate** — {self.fatal}", "", "Exit status 2.", ""]
            return "\n".join(out)
        out += [
            f"**Verdict: {OK} {counts[OK]} as expected · {WARN} {counts[WARN]} differ but handled · "
            f"{FAIL} {counts[FAIL]} block a correct sync · {SKIP} {counts[SKIP]} not checked** "
            f"(exit status {self.exit_code})",
            "",
        ]
        notable = [f for f in self.findings if f.verdict in (FAIL, WARN)]
        if notable:
            out += ["## What differs from the contract", ""]
            out += [f.line() for f in sorted(notable, key=lambda f: f.verdict != FAIL)]
            out.append("")
        sections = [s for s in SECTIONS if s in {f.section for f in self.findings} or s in self.tables]
        for section in sections:
            out += [f"## {section}", ""]
            lines = [f.line() for f in self.findings if f.section == section]
            out += [*lines, ""] if lines else []
            for line in self.tables.get(section, []):
                out.append(line)
            if self.tables.get(section):
                out.append("")
        out += ["## Requests", "", "| # | request | HTTP | ms |", "|---|---|---|---|"]
        for number, probe in enumerate(self.probes, start=1):
            status = probe.status if probe.status is not None else probe.error
            retried = f" (after {_plural(probe.retries, 'retry', 'retries')})" if probe.retries else ""
            out.append(f"| {number} | `{probe.label}` | {status}{retried} | {probe.ms:.0f} |")
        out += [
            "",
            "The report holds field names, JSON types, forms, counts and HTTP statuses only — no credential, token, "
            "name, e-mail, address, amount, invoice number or id.",
            "",
        ]
        return "\n".join(out)


class Diagnosis:
    """Runs the probes and judges them. ``Diagnosis(config).run()`` → :class:`Report`."""

    def __init__(self, config: Mapping[str, t.Any]) -> None:
        self.config = config
        self.prober = Prober(config)
        self.findings: list[Finding] = []
        self.tables: dict[str, list[str]] = {}

    def add(self, key: str, section: str, verdict: str, title: str, text: str) -> None:
        assert verdict in VERDICTS
        self.findings.append(Finding(key, section, verdict, title, text))

    def table(self, section: str, lines: list[str]) -> None:
        self.tables.setdefault(section, []).extend(lines)

    @property
    def api(self) -> str:
        parsed = urlparse(self.prober.api_url)
        host = parsed.hostname or ""
        port = f":{parsed.port}" if parsed.port else ""
        return f"{parsed.scheme}://{host}{port}{parsed.path}"

    def run(self) -> Report:
        started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        LOGGER.info("diagnose: read-only requests to %s", self.api)
        # urllib3 logs every URL at DEBUG, detail URLs with their ids: kept at INFO while the diagnosis runs
        quiet = [logging.getLogger(name) for name in QUIET_LOGGERS]
        levels = [logger.level for logger in quiet]
        for logger in quiet:
            logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
        try:
            self._run()
        except CannotConnect as exc:
            LOGGER.error("diagnose: %s", exc)  # noqa: TRY400
            report = Report([], {}, self._probes(), self.api, started, fatal=str(exc))
        else:
            report = Report(self.findings, self.tables, self._probes(), self.api, started)
        finally:
            for logger, level in zip(quiet, levels):
                logger.setLevel(level)
        counts = Counter(f.verdict for f in report.findings)
        LOGGER.info("diagnose: %d ✅, %d ⚠️, %d ❌, %d ➖; exit status %d", counts[OK], counts[WARN], counts[FAIL],
                    counts[SKIP], report.exit_code)
        return report

    def _probes(self) -> list[Probe]:
        """Token requests first, then the GETs, in the order they were sent."""
        return [*self.prober.session.token_probes, *self.prober.probes]

    # -- the run -------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        p = self.prober
        token = p.token()
        first = p.get("invoice", {"limit": 1})
        if first.status is None:
            msg = f"no answer from {self.api}invoice ({first.error}): check setting api_url and the network"
            raise CannotConnect(msg)
        if first.status in (401, 403):
            msg = (
                f"invoiz answered HTTP {first.status} for GET invoice even with a fresh token: check settings "
                f"{CREDENTIAL_SETTINGS} (the invoiz app may lack access to invoices)"
            )
            raise CannotConnect(msg)
        invoices_default = p.get("invoice")
        invoices = p.get("invoice", {"offset": 0, "limit": PROBE_LIMIT, "orderBy": "date", "desc": "false",
                                     "filter": "all"})
        contacts_default = p.get("customer")
        contacts = p.get("customer", {"offset": 0, "limit": PROBE_LIMIT, "orderBy": "number", "desc": "false"})
        filtered = {
            name: p.get("invoice", {"offset": 0, "limit": 1, "filter": name, "orderBy": "date", "desc": "true"})
            for name in FILTERS
        }
        detail_id = self._detail_id(invoices.rows)
        detail = p.get(f"invoice/{detail_id}", label_path="invoice/{id}") if detail_id is not None else None
        contact_id = self._row_id(contacts.rows[0]) if contacts.rows else None
        contact = p.get(f"customer/{contact_id}", label_path="customer/{id}") if contact_id is not None else None
        unknown = p.get(f"invoice/{UNKNOWN_ID}", label_path="invoice/{unknown id}")
        bad_token = p.get("invoice", {"limit": 1}, token="tap-invoiz-diagnose-invalid-token")
        pay_conditions = p.get("setting/payCondition")

        self._auth(token, bad_token)
        self._paging(invoices_default, invoices, contacts_default, contacts)
        detail_invoice = self._invoice_detail_object(detail)
        self._invoice_fields(invoices, detail, detail_invoice)
        contact_obj = contact.data if contact is not None and isinstance(contact.data, dict) else None
        self._contacts(contacts, contact, contact_obj)
        self._timestamps(invoices.rows, detail_invoice, contacts.rows)
        self._filters(invoices, filtered)
        self._formats(invoices.rows, detail_invoice, contacts.rows, unknown, filtered["draft"].rows)
        self._pay_conditions(pay_conditions)
        self._latency()

    @staticmethod
    def _row_id(row: dict) -> int | None:
        try:
            return to_integer(row.get("id"))
        except Unconvertible:
            return None

    def _detail_id(self, rows: list[dict]) -> int | None:
        """An invoice with payments if there is one (paid, partially paid), else the first one."""
        for preferred in (("paid", "partiallyPaid"), None):
            for row in rows:
                if preferred is None or row.get("state") in preferred:
                    row_id = self._row_id(row)
                    if row_id is not None:
                        return row_id
        return None

    # -- auth ------------------------------------------------------------------------------------------------------

    def _auth(self, token: str, bad_token: Probe) -> None:
        section = "Authentication"
        answer = next((probe for probe in self.prober.session.token_probes if probe.ok), None)
        form, lifetime = token_form(token)
        members = sorted((answer.body or {}) if answer else {})
        others = [name for name in members if name != "token"]
        text = f"`POST auth/token` answered `{{\"token\": …}}`: {form}"
        if lifetime:
            text += f"; lifetime {lifetime} (JWT `exp` − `iat`)"
        if others:
            text += f"; also {_names(others)} (names only)"
            self.add("auth.token", section, WARN, "Token", text + ". Not in the contract; the tap reads only `token` "
                     "and re-authenticates on 401, so a lifetime needs nothing")
        else:
            self.add("auth.token", section, OK, "Token", text + ", no lifetime field (as the contract says)")
        if bad_token.status == 401:  # noqa: PLR2004
            self.add("auth.bad_token", section, OK, "Invalid token",
                     "answered HTTP 401: the tap re-authenticates once and retries, as built")
        else:
            status = bad_token.status if bad_token.status is not None else bad_token.error
            self.add("auth.bad_token", section, FAIL, "Invalid token",
                     f"answered {status}, not 401: the tap renews its token only on 401, so an expired token would "
                     "stop a long run. Send us this report (the tap must renew on this status too)")
        limited = sum(max(probe.rate_limited, int(probe.status == 429)) for probe in self._probes())  # noqa: PLR2004
        headers = sorted({name for probe in self._probes() for name in probe.headers})
        seen = {name: next(probe.headers[name] for probe in self._probes() if name in probe.headers)
                for name in headers}
        shown = ", ".join(f"`{name}: {value}`" for name, value in seen.items())
        if limited:
            self.add("auth.rate_limit", section, WARN, "Rate limit",
                     f"{_plural(limited, 'answer')} HTTP 429 during the diagnosis"
                     + (f"; headers {shown}" if shown else "; no Retry-After")
                     + ". Handled: the tap backs off (honouring Retry-After) and pauses all its page workers; "
                     "keep max_concurrency at 1–2")
        else:
            self.add("auth.rate_limit", section, OK, "Rate limit",
                     "no HTTP 429" + (f"; rate-limit headers {shown}" if shown else ", no rate-limit headers"))

    # -- paging ----------------------------------------------------------------------------------------------------

    def _envelope_ok(self, probe: Probe) -> bool:
        return probe.ok and isinstance(probe.body, dict) and isinstance(probe.data, list)

    def _paging(self, inv_default: Probe, invoices: Probe, con_default: Probe, contacts: Probe) -> None:
        section = "Paging"
        lists = {"invoice": invoices, "customer": contacts}
        bad = [name for name, probe in lists.items() if not self._envelope_ok(probe)]
        if bad:
            what = "; ".join(f"`GET {name}` → HTTP {lists[name].status}, "
                             f"{'JSON ' + json_type(lists[name].body) if lists[name].json_ok else 'not JSON'}"
                             for name in bad)
            self.add("paging.envelope", section, FAIL, "List envelope",
                     f"not `{{meta, data: [...]}}`: {what}. The tap cannot list: send us this report")
            return
        no_meta = [name for name, probe in lists.items() if not isinstance(probe.meta, dict)]
        if no_meta:
            self.add("paging.envelope", section, WARN, "List envelope",
                     f"`data` is an array, but no `meta` object on {_names(no_meta)}: handled, the tap stops at the "
                     "first short page")
        else:
            self.add("paging.envelope", section, OK, "List envelope", "`{meta: {count, …}, data: [...]}` on both lists")

        missing = [name for name, probe in lists.items() if probe.count is None]
        if missing:
            self.add("paging.meta_count", section, WARN, "meta.count",
                     f"missing or not an integer on {_names(missing)}: handled, the tap stops paging at the first "
                     "page shorter than page_size (and cannot tell a scan that lost rows)")
        else:
            raw = [probe.meta.get("count") for probe in lists.values()]
            if any(not isinstance(value, int) or isinstance(value, bool) for value in raw):
                self.add("paging.meta_count", section, WARN, "meta.count",
                         "present but sent as a JSON string: handled, the tap reads it as an integer")
            else:
                self.add("paging.meta_count", section, OK, "meta.count", "an integer on both lists: "
                         f"{_plural(invoices.count or 0, 'invoice')}, {_plural(contacts.count or 0, 'contact')}")

        # default page size
        parts, verdict = [], OK
        for name, probe in (("invoice", inv_default), ("customer", con_default)):
            total = lists[name].count
            got = len(probe.rows)
            if total is None or not probe.ok:
                parts.append(f"`{name}` {got} rows (total unknown)")
                continue
            if got == min(CONTRACT_DEFAULT_LIMIT, total):
                parts.append(f"`{name}` {got} of {total:,}" + (" (20 or more)" if total > got else " (all)"))
            else:
                verdict = WARN
                parts.append(f"`{name}` **{got}** of {total:,}")
        text = "without `limit`: " + "; ".join(parts)
        if verdict == OK:
            self.add("paging.default_limit", section, OK, "Default page size", text + " — consistent with 20")
        else:
            self.add("paging.default_limit", section, WARN, "Default page size",
                     text + " — not 20. Handled: the tap always sends `limit`")

        # largest limit
        parts, capped = [], []
        for name, probe in lists.items():
            total = probe.count
            got = len(probe.rows)
            expected = min(PROBE_LIMIT, total) if total is not None else None
            if expected is not None and got < expected:
                capped.append((name, got))
                parts.append(f"`{name}` **{got}** rows of {total:,}")
            elif total is not None and total < PROBE_LIMIT:
                parts.append(f"`{name}` all {got} rows (the account has fewer than {PROBE_LIMIT}, so a cap above "
                             f"{got} cannot be seen)")
            else:
                parts.append(f"`{name}` {got} rows")
        text = f"`limit={PROBE_LIMIT}`: " + "; ".join(parts)
        if capped:
            cap = min(got for _, got in capped)
            page_size = int(self.config.get("page_size") or 500)
            advice = (f"; page_size {page_size} is above it, which costs nothing" if page_size > cap else "")
            self.add("paging.max_limit", section, WARN, "Largest page",
                     f"{text} — invoiz caps `limit` silently at {cap}. Handled: the tap advances by the rows it "
                     f"receives{advice}")
        else:
            self.add("paging.max_limit", section, OK, "Largest page", text + " — honoured")

    # -- invoices --------------------------------------------------------------------------------------------------

    def _invoice_detail_object(self, detail: Probe | None) -> dict | None:
        section = "Invoice detail"
        if detail is None:
            self.add("invoice_detail.envelope", section, SKIP, "Detail envelope", "no invoice in this account")
            return None
        data = detail.data
        if not detail.ok or not isinstance(data, dict):
            self.add("invoice_detail.envelope", section, FAIL, "Detail envelope",
                     f"`GET invoice/{{id}}` → HTTP {detail.status}, `data` is "
                     f"{json_type(data) if detail.json_ok else 'not JSON'}: the tap cannot confirm deletions or read "
                     "payments. Send us this report")
            return None
        if isinstance(data.get("invoice"), dict):
            others = sorted(name for name in data if name != "invoice")
            self.add("invoice_detail.envelope", section, OK, "Detail envelope",
                     "`data.invoice`" + (f" (beside {_names(others)})" if others else "") + ", as the contract says")
            return data["invoice"]
        if "id" in data:
            self.add("invoice_detail.envelope", section, WARN, "Detail envelope",
                     "the invoice is directly under `data` (not `data.invoice`). Handled: the tap uses `data.invoice` "
                     "if present, else `data`")
            return data
        self.add("invoice_detail.envelope", section, FAIL, "Detail envelope",
                 f"`data` holds {_names(sorted(data))} but no invoice: the tap cannot confirm deletions or read "
                 "payments. Send us this report")
        return None

    def _field_table(self, section: str, title: str, total: int, fields: dict[str, Counter],
                     expected: Iterable[str], known: Iterable[str], schema: set[str]) -> None:
        expected, known = set(expected), set(known)
        lines = [f"<details><summary>{title}: fields seen on {_plural(total, 'object')} (JSON types, no values)"
                 "</summary>", "", "| field | JSON types | on | contract |", "|---|---|---|---|"]
        for path in sorted(fields, key=lambda p: (p.split(".")[0].split("[")[0].lower(), p)):
            counter = fields[path]
            top = "." not in path
            if not top:
                note = ""
            elif path in expected:
                note = "expected"
            elif path in known:
                note = "known, optional"
            else:
                note = "**not in the contract**"
            if top and path not in schema:
                note += " → `extra_fields`"
            lines.append(f"| `{path}` | {_types(counter)} | {sum(counter.values())} | {note} |")
        for name in sorted(expected - set(fields)):
            lines.append(f"| `{name}` | — | 0 | **expected, missing** |")
        lines += ["", "</details>"]
        self.table(section, lines)

    def _invoice_fields(self, invoices: Probe, detail: Probe | None, invoice: dict | None) -> None:
        schema = {f.api for f in INVOICE_FIELDS}
        section = "Invoice list"
        total, fields = census(invoices.rows)
        if not total:
            self.add("invoice_list.fields", section, SKIP, "List fields", "no invoices in this account")
        else:
            top = {path for path in fields if "." not in path}
            missing = [name for name in INVOICE_LIST_EXPECTED if name not in top]
            partial = [name for name in INVOICE_LIST_EXPECTED if name in top and sum(fields[name].values()) < total]
            extra = sorted(top - set(INVOICE_LIST_EXPECTED) - set(INVOICE_LIST_MAYBE) - set(TIMESTAMP_FIELDS))
            maybe = [name for name in INVOICE_LIST_MAYBE if name in top]
            if "id" in missing:
                self.add("invoice_list.fields", section, FAIL, "List fields",
                         "list rows have no `id`: the tap cannot key invoices. Send us this report")
            elif missing or partial:
                text = []
                if missing:
                    text.append(f"list rows lack {_names(missing)}")
                if partial:
                    text.append(f"only some rows carry {_names(partial)}")
                self.add("invoice_list.fields", section, WARN, "List fields",
                         "; ".join(text) + ". Handled: those columns stay empty (the tap reads list rows); nothing "
                         "else depends on them")
            else:
                self.add("invoice_list.fields", section, OK, "List fields",
                         f"every row carries the {len(INVOICE_LIST_EXPECTED)} list fields of the contract")
            if maybe:
                self.add("invoice_list.detail_fields", section, WARN, "Detail fields on list rows",
                         f"list rows carry {_names(maybe)} (the contract expected them on the detail only). Handled: "
                         "loaded into their columns and part of each row's fingerprint")
            else:
                self.add("invoice_list.detail_fields", section, OK, "Detail fields on list rows",
                         "no `positions`, `payments` or `history` on list rows, as the contract says")
            if extra:
                self.add("invoice_list.unknown", section, WARN, "Fields not in the contract",
                         f"{_names(extra)}. Handled: kept verbatim in `extra_fields` (and in the fingerprint)")
            else:
                self.add("invoice_list.unknown", section, OK, "Fields not in the contract", "none")
            self._field_table(section, "Invoice list rows", total, fields, INVOICE_LIST_EXPECTED,
                              (*INVOICE_LIST_MAYBE, *INVOICE_KNOWN), schema)

        section = "Invoice detail"
        if invoice is None:
            return
        total, fields = census([invoice])
        top = set(fields) & {path for path in fields if "." not in path}
        missing = [name for name in INVOICE_DETAIL_EXPECTED if name not in top]
        extra = sorted(top - set(INVOICE_DETAIL_EXPECTED) - set(INVOICE_KNOWN) - set(TIMESTAMP_FIELDS))
        if "payments" not in top or not isinstance(invoice.get("payments"), list):
            self.add("invoice_detail.payments", section, WARN, "Payments",
                     "the detail has no `payments` array: the stream invoice_payments stays empty; the invoices "
                     "are not affected")
        else:
            self.add("invoice_detail.payments", section, OK, "Payments",
                     f"`payments` is an array ({_plural(len(invoice['payments']), 'payment')} on the invoice read)")
        if missing:
            self.add("invoice_detail.fields", section, WARN, "Detail fields",
                     f"the detail lacks {_names(missing)}. Handled: the tap reads list rows; the detail only confirms "
                     "deletions and gives payments")
        else:
            self.add("invoice_detail.fields", section, OK, "Detail fields",
                     f"all {len(INVOICE_DETAIL_EXPECTED)} detail fields of the contract")
        if extra:
            self.add("invoice_detail.unknown", section, WARN, "Fields not in the contract",
                     f"{_names(extra)}. Handled: kept in `extra_fields` when a detail row is loaded")
        else:
            self.add("invoice_detail.unknown", section, OK, "Fields not in the contract", "none")
        self._field_table(section, "Invoice detail (one invoice)", total, fields, INVOICE_DETAIL_EXPECTED,
                          INVOICE_KNOWN, schema)

    # -- contacts --------------------------------------------------------------------------------------------------

    def _contacts(self, contacts: Probe, detail: Probe | None, contact: dict | None) -> None:
        section = "Contacts"
        schema = {f.api for f in CONTACT_FIELDS}
        rows = contacts.rows
        total, fields = census(rows)
        if not total:
            self.add("contacts.fields", section, SKIP, "Contact fields", "no contacts in this account")
            self.add("contacts.email", section, SKIP, "E-mail", "no contacts in this account")
            self.add("contacts.country_key", section, SKIP, "Country key", "no contacts in this account")
            return
        top = {path for path in fields if "." not in path}
        missing = [name for name in CONTACT_EXPECTED if name not in top and name != "email"]
        extra = sorted(top - set(CONTACT_EXPECTED) - set(CONTACT_KNOWN) - set(TIMESTAMP_FIELDS))
        if "id" in missing:
            self.add("contacts.fields", section, FAIL, "Contact fields",
                     "contact rows have no `id`: the tap cannot key contacts. Send us this report")
        elif missing:
            self.add("contacts.fields", section, WARN, "Contact fields",
                     f"rows lack {_names(missing)}. Handled: those columns stay empty")
        else:
            self.add("contacts.fields", section, OK, "Contact fields", "every field of the contract is there")
        if extra:
            self.add("contacts.unknown", section, WARN, "Fields not in the contract",
                     f"{_names(extra)}. Handled: kept verbatim in `extra_fields` (and in the fingerprint)")
        else:
            self.add("contacts.unknown", section, OK, "Fields not in the contract", "none")

        # e-mail: R2 — a customer is an e-mail address
        with_key = sum(1 for row in rows if "email" in row)
        filled = sum(1 for row in rows if isinstance(row.get("email"), str) and row["email"].strip())
        person_emails = sum(1 for value in values_at(rows, "contactPersons[].email")
                            if isinstance(value, str) and value.strip())
        detail_has = contact is not None and "email" in contact
        if with_key:
            self.add("contacts.email", section, OK, "E-mail",
                     f"`email` on {with_key} of {_plural(total, 'row')}, non-empty on {filled}")
        else:
            where = ("the contact detail has it, the list rows do not" if detail_has
                     else "neither the list rows nor the contact detail have it")
            hint = f"; {person_emails} contact persons carry one" if person_emails else ""
            self.add("contacts.email", section, FAIL, "E-mail",
                     f"no `email` on contacts ({where}{hint}): invoices cannot be tied to customers by e-mail, the "
                     "product's key (every invoice would be unassigned). Send us this report; the tap must read the "
                     "e-mail from where invoiz keeps it")

        # address.countryIso vs isoCountry
        forms = Counter()
        for row in rows:
            address = row.get("address")
            if not isinstance(address, dict):
                forms["no address object"] += 1
            elif "countryIso" in address:
                forms["countryIso"] += 1
            elif "isoCountry" in address:
                forms["isoCountry"] += 1
            else:
                forms["neither"] += 1
        shown = ", ".join(f"{name} {number}" for name, number in forms.most_common())
        if forms["isoCountry"]:
            self.add("contacts.country_key", section, WARN, "Country key",
                     f"`address.isoCountry` ({shown}). Handled: country_iso falls back to `isoCountry`")
        elif forms["countryIso"] == total:
            self.add("contacts.country_key", section, OK, "Country key", "`address.countryIso` on every row")
        else:
            self.add("contacts.country_key", section, WARN, "Country key",
                     f"{shown}: country_iso stays empty where neither key is sent")

        if detail is not None:
            if contact is not None and "id" in contact:
                self.add("contacts.detail_envelope", section, OK, "Contact detail envelope",
                         "the customer directly under `data`, as the contract says")
            else:
                inner = sorted(contact) if isinstance(contact, dict) else []
                self.add("contacts.detail_envelope", section, WARN, "Contact detail envelope",
                         f"`GET customer/{{id}}` → HTTP {detail.status}"
                         + (f", `data` holds {_names(inner)}" if inner else "")
                         + ": used only to confirm a contact's deletion; a contact missing from the list is then "
                         "kept, not tombstoned. Send us this report")
        self._field_table(section, "Contact list rows", total, fields, CONTACT_EXPECTED, CONTACT_KNOWN, schema)

    def _timestamps(self, rows: list[dict], invoice: dict | None, contacts: list[dict]) -> None:
        where = []
        for label, objects in (("invoice list rows", rows), ("invoice detail", [invoice] if invoice else []),
                               ("contacts", contacts)):
            names = sorted({name for obj in objects for name in TIMESTAMP_FIELDS if name in obj})
            if names:
                where.append(f"{_names(names)} on {label}")
        if where:
            self.add("invoice_list.timestamps", "Invoice list", WARN, "createdAt / updatedAt",
                     "; ".join(where) + " (the contract found none). Handled: kept in `extra_fields` and part of the "
                     "fingerprint; `updatedAt` could later become a bookmark")
        else:
            self.add("invoice_list.timestamps", "Invoice list", OK, "createdAt / updatedAt",
                     "absent, as the contract says: the tap detects changes by fingerprint")

    # -- filters ---------------------------------------------------------------------------------------------------

    def _filters(self, invoices: Probe, filtered: dict[str, Probe]) -> None:
        section = "Filters"
        fallback = ("Handled: the tap does not rely on it and lists every invoice (`filter=all`) — correct, more "
                    "requests")
        all_count = invoices.count
        meta = invoices.meta if isinstance(invoices.meta, dict) else {}
        meta_filter = meta.get("filter")
        counts_by_filter: dict[str, int | None] = {}
        if isinstance(meta_filter, dict):
            for name, entry in meta_filter.items():
                value = entry.get("count") if isinstance(entry, dict) else None
                try:
                    counts_by_filter[str(name)] = to_integer(value) if not isinstance(value, bool) else None
                except Unconvertible:
                    counts_by_filter[str(name)] = None
            lacking = [name for name in ("all", *FILTERS) if counts_by_filter.get(name) is None]
            keys = sorted(counts_by_filter, key=lambda n: (("all", *FILTERS).index(n) if n in ("all", *FILTERS)
                                                           else 99, n))
            if lacking:
                self.add("filters.meta_filter", section, WARN, "meta.filter",
                         f"an object with {_names(keys)}, but no `{{count}}` for {_names(lacking)}. {fallback}")
            else:
                self.add("filters.meta_filter", section, OK, "meta.filter",
                         f"an object keyed by filter name, `{{count}}` for {_names(keys)}")
        elif meta_filter is None:
            self.add("filters.meta_filter", section, WARN, "meta.filter",
                     f"not sent on the invoice list. {fallback}")
        else:
            self.add("filters.meta_filter", section, WARN, "meta.filter",
                     f"a JSON {json_type(meta_filter)}, not an object keyed by filter name. {fallback}")

        # the whole listing, when it fitted on the page read: the true number of invoices per state
        complete = all_count is not None and len(invoices.rows) >= all_count
        tally = Counter(row.get("state") for row in invoices.rows) if complete else None

        lines = ["| filter | HTTP | `meta.count` | `meta.filter` count | states in the listing | row's state |",
                 "|---|---|---|---|---|---|"]
        state_counts: dict[str, int] = {}
        for name in FILTERS:
            probe = filtered[name]
            count = probe.count
            listed = counts_by_filter.get(name)
            row_state = probe.rows[0].get("state") if probe.rows else None
            in_listing: int | None = None
            if tally is not None:
                if name == "overdue":
                    in_listing = None  # depends on the server's clock and rule (contract: ❓)
                else:
                    in_listing = tally.get(name, 0)
            lines.append(
                f"| `{name}` | {probe.status if probe.status is not None else probe.error} | "
                f"{'—' if count is None else count} | {'—' if listed is None else listed} | "
                f"{'—' if in_listing is None else in_listing} | "
                f"{'—' if row_state is None else '`' + str(row_state) + '`' if isinstance(row_state, str) else json_type(row_state)} |"
            )
            if not self._envelope_ok(probe):
                self.add(f"filters.{name}", section, WARN, f"filter={name}",
                         f"answered HTTP {probe.status}: the filter is not supported. {fallback}")
                continue
            problems = []
            if count is None:
                problems.append("no `meta.count`")
            if listed is not None and count is not None and count != listed:
                problems.append(f"`meta.count` {count} ≠ `meta.filter.{name}.count` {listed}")
            if name in STATE_FILTERS:
                if isinstance(row_state, str) and row_state != name:
                    problems.append(f"its row is in state `{row_state}`")
                if in_listing is not None and count is not None and count != in_listing:
                    problems.append(f"it counts {count}, the listing has {_plural(in_listing, 'invoice')} in state "
                                    f"`{name}`")
                truth = [n for n in (listed, in_listing) if n is not None]
                if count is not None and all_count and count == all_count and truth and any(n != count for n in truth):
                    problems.append("it answers like `filter=all` (the filter seems ignored)")
                if count is not None:
                    state_counts[name] = count
            elif isinstance(row_state, str) and row_state not in OPEN_STATES:
                problems.append(f"its row is in state `{row_state}`, not an open one")
            if len(probe.rows) > 1:
                problems.append(f"`limit=1` gave {len(probe.rows)} rows")
            if problems:
                self.add(f"filters.{name}", section, WARN, f"filter={name}", "; ".join(problems) + f". {fallback}")
            else:
                agreed = "= `meta.filter` count" if listed is not None else "(no `meta.filter` to compare)"
                state = ("its row is open" if name == "overdue" else f"its row is `{name}`") if probe.rows else "no rows"
                self.add(f"filters.{name}", section, OK, f"filter={name}",
                         f"`meta.count` {count} {agreed}; {state}"
                         + (f"; equals the listing's count" if in_listing is not None else ""))
        if all_count is None or len(state_counts) < len(STATE_FILTERS):
            self.add("filters.sum", section, SKIP, "Counts add up to all",
                     "not every state filter gave a count (see above)")
        else:
            total = sum(state_counts.values())
            if total == all_count:
                self.add("filters.sum", section, OK, "Counts add up to all",
                         f"the six state filters count {total:,} = `all` {all_count:,}: every invoice is in exactly "
                         "one state filter")
            else:
                more = "more" if total > all_count else "fewer"
                self.add("filters.sum", section, WARN, "Counts add up to all",
                         f"the six state filters count {total:,}, {more} than `all` ({all_count:,}): states overlap "
                         f"or other states exist. {fallback}")
        lines.append("")
        lines.append("`states in the listing`: invoices per state in the full listing read above, when it fitted on "
                     "one page. `overdue` follows the server's clock and rule, so only its row's state is checked.")
        self.table(section, lines)

    # -- formats ---------------------------------------------------------------------------------------------------

    def _formats(self, rows: list[dict], invoice: dict | None, contacts: list[dict], unknown: Probe,
                 draft_rows: list[dict]) -> None:
        section = "Formats"
        objects = [*rows, *([invoice] if invoice else [])]
        # calendar dates
        forms: Counter = Counter()
        for path in CALENDAR_DATES:
            for value in values_at(objects, path):
                if value is not None:
                    forms[date_form(value)] += 1
        shown = ", ".join(f"{form} {number}" for form, number in forms.most_common())
        expected = "UTC midnight (…T00:00:00Z)"
        if not forms:
            self.add("formats.dates", section, SKIP, "Calendar dates", "no dates seen")
        elif set(forms) == {expected}:
            self.add("formats.dates", section, OK, "Calendar dates",
                     f"{shown} — the form the contract's sources send")
        elif forms.get("unreadable") or any(form.startswith(("JSON", "empty")) for form in forms):
            self.add("formats.dates", section, FAIL, "Calendar dates",
                     f"{shown}: unreadable dates load as null (raw value in `extra_fields`), so invoice dates and "
                     "start_date would be wrong. Send us this report (the form only is in it)")
        else:
            how = {
                "YYYY-MM-DD": "read as that calendar day",
                "Berlin midnight as UTC instant (…T22/23:00:00Z)": "converted to the Europe/Berlin date (the next "
                "UTC day)",
                "date-time with zone": "converted to the Europe/Berlin date",
                "date-time without zone": "its own date is taken",
            }
            handled = "; ".join(f"{how[form]} ({form})" if len(forms) > 1 else how[form] for form in forms
                                if form in how)
            self.add("formats.dates", section, WARN, "Calendar dates", f"{shown}. Handled: {handled}")

        forms = Counter()
        for path in DATE_TIMES:
            for value in values_at(objects, path):
                if value is not None:
                    forms[date_form(value)] += 1
        shown = ", ".join(f"{form} {number}" for form, number in forms.most_common())
        zoned = {"UTC midnight (…T00:00:00Z)", "Berlin midnight as UTC instant (…T22/23:00:00Z)", "date-time with zone"}
        if not forms:
            self.add("formats.datetimes", section, SKIP, "Date-times", "no `lockedAt`, `sentAt` or `history[].date` seen")
        elif set(forms) <= zoned:
            self.add("formats.datetimes", section, OK, "Date-times", "ISO 8601 with a zone (`lockedAt`, `sentAt`, "
                     "`history[].date`)")
        elif forms.get("unreadable") or any(form.startswith(("JSON", "empty")) for form in forms):
            self.add("formats.datetimes", section, FAIL, "Date-times",
                     f"{shown}: unreadable date-times load as null. Send us this report")
        else:
            self.add("formats.datetimes", section, WARN, "Date-times",
                     f"{shown}. Handled: kept as sent (a plain date becomes midnight UTC)")

        # ids
        id_types: Counter = Counter()
        for objs, path in ((rows, "id"), (rows, "customerId"), (contacts, "id")):
            for value in values_at(objs, path):
                id_types[json_type(value) if not (isinstance(value, str) and value.strip().lstrip("-").isdigit())
                         else "numeric string"] += 1
        shown = ", ".join(f"{kind} {number}" for kind, number in id_types.most_common())
        if not id_types:
            self.add("formats.ids", section, SKIP, "Ids", "no rows")
        elif set(id_types) == {"integer"}:
            self.add("formats.ids", section, OK, "Ids", "invoice `id`, `customerId` and contact `id` are integers")
        elif set(id_types) <= {"integer", "numeric string"}:
            self.add("formats.ids", section, WARN, "Ids", f"{shown}. Handled: read as integers")
        else:
            self.add("formats.ids", section, FAIL, "Ids",
                     f"{shown}: rows without an integer id stop the tap. Send us this report")

        # invoice and customer numbers
        kinds: Counter = Counter()
        zeros = 0
        for objs in (rows, contacts):
            for obj in objs:
                if obj.get("state") == "draft":
                    continue
                value = obj.get("number")
                kinds[json_type(value)] += 1
                if isinstance(value, str) and len(value) > 1 and value.startswith("0"):
                    zeros += 1
        shown = ", ".join(f"{kind} {number}" for kind, number in kinds.most_common())
        if not kinds:
            self.add("formats.numbers", section, SKIP, "Invoice and customer numbers", "no rows")
        elif set(kinds) <= {"string"}:
            self.add("formats.numbers", section, OK, "Invoice and customer numbers",
                     f"strings ({zeros} with leading zeros, kept)")
        elif set(kinds) <= {"string", "integer", "null"}:
            self.add("formats.numbers", section, WARN, "Invoice and customer numbers",
                     f"{shown}. Handled: numbers become text (raw value in `extra_fields`), null stays null")
        else:
            self.add("formats.numbers", section, FAIL, "Invoice and customer numbers",
                     f"{shown}: such numbers load as null. Send us this report")

        drafts = [row for row in rows if row.get("state") == "draft"]
        seen = {self._row_id(row) for row in drafts}
        drafts += [row for row in draft_rows if row.get("state") == "draft" and self._row_id(row) not in seen]
        forms = Counter("null" if row.get("number") is None else "empty string" if row.get("number") == ""
                        else json_type(row.get("number")) for row in drafts)
        shown = ", ".join(f"{form} {number}" for form, number in forms.most_common())
        if not drafts:
            self.add("formats.draft_number", section, SKIP, "Draft numbers", "no draft invoice in the listing")
        elif set(forms) == {"null"}:
            self.add("formats.draft_number", section, OK, "Draft numbers", f"`null` on {_plural(len(drafts), 'draft')}")
        elif set(forms) <= {"null", "empty string"}:
            self.add("formats.draft_number", section, WARN, "Draft numbers",
                     f"{shown}. Handled: an empty number is loaded as null")
        else:
            self.add("formats.draft_number", section, WARN, "Draft numbers",
                     f"{shown}: drafts carry a number; loaded as it is")

        money: Counter = Counter()
        for path in MONEY:
            for value in values_at(rows, path):
                if value is not None:
                    kind = json_type(value)
                    if kind == "string":
                        try:
                            decimal.Decimal(value.strip())
                            kind = "decimal string"
                        except decimal.InvalidOperation:
                            kind = "other string"
                    money[kind] += 1
        shown = ", ".join(f"{kind} {number}" for kind, number in money.most_common())
        if not money:
            self.add("formats.money", section, SKIP, "Amounts", "no rows")
        elif set(money) <= {"number", "integer"}:
            self.add("formats.money", section, OK, "Amounts", "`totalNet`, `totalGross`, `outstandingAmount`, "
                     "`cashDiscountTotal` are JSON numbers")
        elif set(money) <= {"number", "integer", "decimal string"}:
            self.add("formats.money", section, WARN, "Amounts",
                     f"{shown}. Handled: decimal strings are converted exactly (raw value kept in `extra_fields`)")
        else:
            self.add("formats.money", section, FAIL, "Amounts",
                     f"{shown}: such amounts load as null and customer values would be wrong. Send us this report")

        # unknown id
        body = unknown.body if isinstance(unknown.body, dict) else None
        code = None
        if body and isinstance(body.get("meta"), dict):
            ids = body["meta"].get("id")
            if isinstance(ids, list) and ids and isinstance(ids[0], dict):
                code = ids[0].get("code")
        shape = (f"body `{{name, message, meta.id[0].code: {code}}}`" if code
                 else "a JSON body" if unknown.json_ok else "no JSON body")
        not_found = unknown.not_found
        if unknown.status == 404:  # noqa: PLR2004
            self.add("formats.not_found", section, OK, "Unknown id", f"HTTP 404, {shape}: the tap marks such rows "
                     "deleted")
        elif unknown.status == 400 and not_found:  # noqa: PLR2004
            self.add("formats.not_found", section, WARN, "Unknown id",
                     f"HTTP 400 with `NOT_FOUND`, {shape}. Handled: the tap treats 404 and 400 + NOT_FOUND alike")
        else:
            status = unknown.status if unknown.status is not None else unknown.error
            self.add("formats.not_found", section, FAIL, "Unknown id",
                     f"answered {status} ({shape}): the tap cannot confirm that a row was deleted (the run fails "
                     "or deleted rows stay). Send us this report")

    def _pay_conditions(self, probe: Probe) -> None:
        """Not used by the tap, so no verdict: a note that settles the contract's question on its envelope."""
        if probe.ok and isinstance(probe.data, list):
            shape = f"`{{data: [...]}}` ({_plural(len(probe.data), 'entry', 'entries')})"
        elif probe.ok and isinstance(probe.body, list):
            shape = "a bare array, not `{data: [...]}`"
        else:
            shape = f"HTTP {probe.status if probe.status is not None else probe.error}"
        self.table("Other endpoints", [f"- `GET setting/payCondition` (not used by the tap): {shape}"])

    def _latency(self) -> None:
        probes = [p for p in self._probes() if p.status is not None]
        if not probes:
            return
        times = [p.ms for p in probes]
        median, worst = statistics.median(times), max(times)
        slowest = max(probes, key=lambda p: p.ms).label
        text = f"median {median:.0f} ms, max {worst:.0f} ms (`{slowest}`) over {_plural(len(probes), 'request')}"
        timeout = float(self.config.get("request_timeout") or 60) * 1000
        if worst > timeout / 2:
            self.add("latency", "Latency", WARN, "Latency",
                     text + f": close to request_timeout ({timeout / 1000:.0f} s). Handled by retries; consider a "
                     "larger request_timeout")
        else:
            self.add("latency", "Latency", OK, "Latency", text)


def diagnose(config: Mapping[str, t.Any]) -> Report:
    """Run the read-only diagnosis against the account in ``config`` (the tap's settings)."""
    return Diagnosis(config).run()


def config_problems(config: Mapping[str, t.Any], errors: list[str]) -> Report:
    """A report for settings that are missing or invalid (exit status 2)."""
    api = str(config.get("api_url") or "")
    parsed = urlparse(api)
    shown = f"{parsed.scheme}://{parsed.hostname or ''}{parsed.path}" if parsed.scheme else "(api_url not set)"
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    secrets = [str(config.get(name)) for name in ("api_key", "api_key_secret", "installation_id") if config.get(name)]
    cleaned = []
    for error in errors:
        for secret in secrets:
            error = error.replace(secret, "***")
        cleaned.append(error)
    message = "the settings are incomplete or invalid: " + "; ".join(cleaned)
    return Report([], {}, [], shown, started, fatal=message)


__all__ = ["FAIL", "OK", "SKIP", "WARN", "Diagnosis", "Finding", "Report", "config_problems", "diagnose"]
