"""The diagnosis as a whole: the order of the probes, the authentication and paging checks, and the entry points."""

from __future__ import annotations

import datetime as dt
import logging
import typing as t
from collections import Counter
from urllib.parse import urlparse

from tap_invoiz.auth import CREDENTIAL_SETTINGS
from tap_invoiz.diagnose.contacts import ContactChecks
from tap_invoiz.diagnose.contract import (
    CONTRACT_DEFAULT_LIMIT,
    FAIL,
    FILTERS,
    LOGGER,
    OK,
    PROBE_LIMIT,
    QUIET_LOGGERS,
    SKIP,
    UNKNOWN_ID,
    WARN,
)
from tap_invoiz.diagnose.fields import FieldChecks
from tap_invoiz.diagnose.filters import FilterChecks
from tap_invoiz.diagnose.formats import FormatChecks
from tap_invoiz.diagnose.forms import json_type, name_list, plural, token_form
from tap_invoiz.diagnose.probes import CannotConnect, Probe
from tap_invoiz.diagnose.report import Report
from tap_invoiz.paging import DEFAULT_PAGE_SIZE

if t.TYPE_CHECKING:
    from collections.abc import Mapping


class Diagnosis(FieldChecks, ContactChecks, FilterChecks, FormatChecks):
    """Runs the probes and judges them. ``Diagnosis(config).run()`` → :class:`Report`."""

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
            LOGGER.error("diagnose: %s", exc)
            report = Report([], {}, self._probes(), self.api, started, fatal=str(exc))
        else:
            report = Report(self.findings, self.tables, self._probes(), self.api, started)
        finally:
            for logger, level in zip(quiet, levels):
                logger.setLevel(level)
        counts = Counter(f.verdict for f in report.findings)
        LOGGER.info(
            "diagnose: %d ✅, %d ⚠️, %d ❌, %d ➖; exit status %d",
            counts[OK],
            counts[WARN],
            counts[FAIL],
            counts[SKIP],
            report.exit_code,
        )
        return report

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
        invoices = p.get(
            "invoice", {"offset": 0, "limit": PROBE_LIMIT, "orderBy": "date", "desc": "false", "filter": "all"}
        )
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
        self._invoice_fields(invoices, detail_invoice)
        contact_obj = contact.data if contact is not None and isinstance(contact.data, dict) else None
        self._contacts(contacts, contact, contact_obj)
        self._timestamps(invoices.rows, detail_invoice, contacts.rows)
        self._filters(invoices, filtered)
        self._formats(invoices.rows, detail_invoice, contacts.rows, unknown, filtered["draft"].rows)
        self._pay_conditions(pay_conditions)
        self._latency()

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
        text = f'`POST auth/token` answered `{{"token": …}}`: {form}'
        if lifetime:
            text += f"; lifetime {lifetime} (JWT `exp` − `iat`)"
        if others:
            text += f"; also {name_list(others)} (names only)"
            self.add(
                "auth.token",
                section,
                WARN,
                "Token",
                text + ". Not in the contract; the tap reads only `token` "
                "and re-authenticates on 401, so a lifetime needs nothing",
            )
        else:
            self.add("auth.token", section, OK, "Token", text + ", no lifetime field (as the contract says)")
        if bad_token.status == 401:
            self.add(
                "auth.bad_token",
                section,
                OK,
                "Invalid token",
                "answered HTTP 401: the tap re-authenticates once and retries, as built",
            )
        else:
            status = bad_token.status if bad_token.status is not None else bad_token.error
            self.add(
                "auth.bad_token",
                section,
                FAIL,
                "Invalid token",
                f"answered {status}, not 401: the tap renews its token only on 401, so an expired token would "
                "stop a long run. Send us this report (the tap must renew on this status too)",
            )
        limited = sum(max(probe.rate_limited, int(probe.status == 429)) for probe in self._probes())
        headers = sorted({name for probe in self._probes() for name in probe.headers})
        seen = {
            name: next(probe.headers[name] for probe in self._probes() if name in probe.headers) for name in headers
        }
        shown = ", ".join(f"`{name}: {value}`" for name, value in seen.items())
        if limited:
            self.add(
                "auth.rate_limit",
                section,
                WARN,
                "Rate limit",
                f"{plural(limited, 'answer')} HTTP 429 during the diagnosis"
                + (f"; headers {shown}" if shown else "; no Retry-After")
                + ". Handled: the tap backs off (honouring Retry-After) and pauses all its page workers; "
                "keep max_concurrency at 1–2",
            )
        else:
            self.add(
                "auth.rate_limit",
                section,
                OK,
                "Rate limit",
                "no HTTP 429" + (f"; rate-limit headers {shown}" if shown else ", no rate-limit headers"),
            )

    # -- paging ----------------------------------------------------------------------------------------------------

    def _paging(self, inv_default: Probe, invoices: Probe, con_default: Probe, contacts: Probe) -> None:
        lists = {"invoice": invoices, "customer": contacts}
        if not self._paging_envelope(lists):
            return
        self._paging_count(lists)
        self._paging_default_limit(lists, inv_default, con_default)
        self._paging_max_limit(lists)

    def _paging_envelope(self, lists: dict[str, Probe]) -> bool:
        """Both lists answer ``{meta, data: [...]}``; False (the rest of paging is not checked) if not."""
        section = "Paging"
        say = self.verdict("paging.envelope", section, "List envelope")
        bad = [name for name, probe in lists.items() if not self._envelope_ok(probe)]
        if bad:
            what = "; ".join(
                f"`GET {name}` → HTTP {lists[name].status}, "
                f"{'JSON ' + json_type(lists[name].body) if lists[name].json_ok else 'not JSON'}"
                for name in bad
            )
            say(FAIL, f"not `{{meta, data: [...]}}`: {what}. The tap cannot list: send us this report")
            return False
        no_meta = [name for name, probe in lists.items() if not isinstance(probe.meta, dict)]
        if no_meta:
            say(
                WARN,
                f"`data` is an array, but no `meta` object on {name_list(no_meta)}: handled, the tap stops at the "
                "first short page",
            )
        else:
            say(OK, "`{meta: {count, …}, data: [...]}` on both lists")
        return True

    def _paging_count(self, lists: dict[str, Probe]) -> None:
        section = "Paging"
        say = self.verdict("paging.meta_count", section, "meta.count")
        missing = [name for name, probe in lists.items() if probe.count is None]
        if missing:
            say(
                WARN,
                f"missing or not an integer on {name_list(missing)}: handled, the tap stops paging at the first "
                "page shorter than page_size (and cannot tell a scan that lost rows)",
            )
        else:
            raw = [probe.meta.get("count") for probe in lists.values()]
            if any(not isinstance(value, int) or isinstance(value, bool) for value in raw):
                say(WARN, "present but sent as a JSON string: handled, the tap reads it as an integer")
            else:
                say(
                    OK,
                    "an integer on both lists: "
                    f"{plural(lists['invoice'].count or 0, 'invoice')}, {plural(lists['customer'].count or 0, 'contact')}",
                )

    def _paging_default_limit(self, lists: dict[str, Probe], inv_default: Probe, con_default: Probe) -> None:
        """The page size without ``limit``."""
        section = "Paging"
        say = self.verdict("paging.default_limit", section, "Default page size")
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
            say(OK, text + " — consistent with 20")
        else:
            say(WARN, text + " — not 20. Handled: the tap always sends `limit`")

    def _paging_max_limit(self, lists: dict[str, Probe]) -> None:
        """Whether ``limit={PROBE_LIMIT}`` is honoured or capped silently."""
        section = "Paging"
        say = self.verdict("paging.max_limit", section, "Largest page")
        parts, capped = [], []
        for name, probe in lists.items():
            total = probe.count
            got = len(probe.rows)
            expected = min(PROBE_LIMIT, total) if total is not None else None
            if expected is not None and got < expected:
                capped.append((name, got))
                parts.append(f"`{name}` **{got}** rows of {total:,}")
            elif total is not None and total < PROBE_LIMIT:
                parts.append(
                    f"`{name}` all {got} rows (the account has fewer than {PROBE_LIMIT}, so a cap above "
                    f"{got} cannot be seen)"
                )
            else:
                parts.append(f"`{name}` {got} rows")
        text = f"`limit={PROBE_LIMIT}`: " + "; ".join(parts)
        if capped:
            cap = min(got for _, got in capped)
            page_size = int(self.config.get("page_size") or DEFAULT_PAGE_SIZE)
            advice = f"; page_size {page_size} is above it, which costs nothing" if page_size > cap else ""
            say(
                WARN,
                f"{text} — invoiz caps `limit` silently at {cap}. Handled: the tap advances by the rows it "
                f"receives{advice}",
            )
        else:
            say(OK, text + " — honoured")

    # -- invoices --------------------------------------------------------------------------------------------------


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
