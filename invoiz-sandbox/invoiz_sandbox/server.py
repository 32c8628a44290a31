"""The invoiz sandbox: a local HTTP server that follows docs/invoiz-api.md (the reconstructed contract).

Python:  ``with Sandbox(seed=42, invoices=200) as sb: requests.get(sb.api_url + "invoice", ...)``
(the console script is cli.py).

The HTTP transport is host.py (a Sandbox is a :class:`~invoiz_sandbox.host.Host` that routes every request to itself),
how a request is answered answers.py; this module holds the Sandbox's configuration, counters, faults, tokens, truth
helpers for tests and scenario actions. Credentials and tokens are never logged.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections import Counter, deque

from .answers import ApiAnswers
from .data import Dataset, NotFound
from .faults import FaultSet
from .host import Host, RequestCounter, Route, SandboxHandler

DEMO_CREDENTIALS = {
    "api_key": "sandbox-key",
    "api_key_secret": "sandbox-secret",
    "installation_id": "sandbox-installation",
}

VARIANTS = {
    "iso_country": "customer address uses `isoCountry` instead of `countryIso` (S1 typing)",
    "detail_flat": "GET invoice/{id} returns the invoice directly under `data` (S1 typing) instead of `data.invoice`",
    "date_only": "calendar dates as `YYYY-MM-DD` (S3 dateFormat.api) instead of `YYYY-MM-DDT00:00:00.000Z`",
    "berlin_midnight": "calendar dates as the UTC instant of Berlin midnight, e.g. `2026-03-03T23:00:00.000Z` "
    "for 4 March (a trap for naive date parsing)",
    "updated_at": "rows carry `createdAt`/`updatedAt` (ISO datetimes; updatedAt moves on every change)",
    "extra_fields": "rows carry unknown fields (`currency`, `isMigrated`, `customFields` on invoices; "
    "`isArchived`, `lastActivity` on customers)",
    "not_found_400": 'unknown id → HTTP 400 (instead of 404) with `meta.id[0].code == "NOT_FOUND"`',
    "draft_number_empty": 'drafts have `number: ""` instead of `null`',
    "lean_list": "invoice list rows without `title` and `lockedAt` (they are ✅ read from list rows by S2, but "
    "the contract marks them L?)",
    "list_positions": "invoice list rows include `positions`",
    "no_customer_email": "customers have no `email` key at all (S1 typing lacks it)",
    "no_meta_filter": "invoice list answers carry only `meta.count`, no `meta.filter` counts (❓ on app.invoiz.de)",
    "locked_includes_dunned": '`filter=locked` (the web app\'s "Offen" tab) also returns dunned and partially '
    "paid invoices; `meta.count` and `meta.filter.locked.count` count them too",
    "filter_ignored": "the server ignores `filter`: every list answer has all invoices and `meta.count` of all "
    "(`meta.filter` still has the true per-state counts)",
}


def _dataset_method(name: str):
    """A Sandbox method that calls the Dataset method of the same name (whose signature and docstring it shows)."""
    wrapped = getattr(Dataset, name)

    @functools.wraps(wrapped)
    def method(self, *args, **kwargs):
        return getattr(self.dataset, name)(*args, **kwargs)

    return method


class Sandbox(ApiAnswers, Host):
    """An in-process invoiz API stand-in.  See the package README for the full contract."""

    ADMIN_ACTIONS = {
        name: name
        for name in (
            "create_invoice",
            "lock_invoice",
            "update_invoice",
            "pay",
            "partly_pay",
            "revert_payment",
            "dun",
            "cancel",
            "delete_invoice",
            "write_and_pay",
            "delete_payment",
            "create_contact",
            "update_contact",
            "set_contact_email",
            "delete_contact",
            "advance_clock",
            "set_today",
            "fault",
            "set_faults",
            "clear_faults",
            "expire_tokens",
            "set_variants",
            "set_max_page_size",
            "set_latency",
            "reset_counters",
            "invoice",
            "contact",
            "invoice_ids",
            "contact_ids",
            "stats",
            "issue_token",
            "list_faults",
            "set_credentials",
            "set_raw_fields",
        )
    }

    def __init__(
        self,
        seed=42,
        invoices=200,
        contacts=None,
        variants=(),
        max_page_size=500,
        latency_ms=0,
        today=None,
        port=0,
        credentials=None,
        mix="default",
    ):
        self.seed = int(seed)
        self.dataset = Dataset(seed=self.seed, invoices=int(invoices), contacts=contacts, today=today, mix=mix)
        self.variants: frozenset = frozenset()
        self.set_variants(variants)
        self.max_page_size = int(max_page_size)
        self.latency_ms = float(latency_ms)
        self.port = int(port)
        self.credentials = dict(credentials or DEMO_CREDENTIALS)
        self.requests = RequestCounter()
        self.faults = FaultSet(self.seed)
        self._tokens: dict[str, dict] = {}
        self._tok_lock = threading.Lock()
        self._issued: list[str] = []
        # concurrency seen by the server: requests being answered right now / at most, per kind (latency included),
        # and the last API requests in arrival order: {"seq", "kind", "offset", "status"} (status None until answered)
        self.in_flight: Counter = Counter()
        self.max_in_flight: Counter = Counter()
        self.request_log: deque = deque(maxlen=10000)
        self._flight_lock = threading.Lock()
        self._request_seq = 0

    def route(self, request: SandboxHandler, method: str, parts: list[str]) -> Route:
        return Route(self, parts)

    def start_line_details(self) -> str:
        cred = self.credentials
        return (
            f"credentials: api_key={cred['api_key']} api_key_secret={cred['api_key_secret']} "
            f"installation_id={cred['installation_id']}"
        )

    @property
    def today(self):
        return self.dataset.today

    def __repr__(self):
        return (
            f"Sandbox(seed={self.seed}, invoices={self.dataset.n_base}, contacts={self.dataset.nc_base}, "
            f"variants={sorted(self.variants)}, api_url={self.api_url!r})"
        )

    # ------------------------------------------------------------------ configuration
    def set_variants(self, variants=()):
        if isinstance(variants, str):
            variants = [variants]
        unknown = set(variants) - set(VARIANTS)
        if unknown:
            raise ValueError(f"unknown variants {sorted(unknown)}; known: {sorted(VARIANTS)}")
        self.variants = frozenset(variants)
        return sorted(self.variants)

    def set_credentials(self, api_key=None, api_key_secret=None, installation_id=None):
        """Change the accepted credentials (tokens already issued stay valid). Returns nothing secret."""
        for k, v in (("api_key", api_key), ("api_key_secret", api_key_secret), ("installation_id", installation_id)):
            if v is not None:
                self.credentials[k] = v
        return sorted(self.credentials)

    def set_max_page_size(self, max_page_size):
        self.max_page_size = int(max_page_size)
        return self.max_page_size

    def set_latency(self, ms):
        self.latency_ms = float(ms)
        return self.latency_ms

    # ------------------------------------------------------------------ counters
    def _request_started(self, kind, query) -> dict:
        with self._flight_lock:
            self._request_seq += 1
            self.in_flight[kind] += 1
            self.max_in_flight[kind] = max(self.max_in_flight[kind], self.in_flight[kind])
            entry = {"seq": self._request_seq, "kind": kind, "offset": query.get("offset"), "status": None}
            self.request_log.append(entry)
            return entry

    def _request_finished(self, kind):
        with self._flight_lock:
            self.in_flight[kind] -= 1

    def reset_counters(self):
        with self._flight_lock:
            self.max_in_flight.clear()
            self.request_log.clear()
        self.requests.reset()
        return dict(self.requests)

    def stats(self) -> dict:
        return {
            "requests": dict(self.requests),
            "today": self.today.isoformat(),
            "version": self.dataset.version,
            "invoices": self.dataset.n - self.dataset.state.count(0),
            "contacts": self.dataset.nc - sum(self.dataset.c_deleted),
            "variants": sorted(self.variants),
            "mix": self.dataset.mix,
            "max_page_size": self.max_page_size,
            "latency_ms": self.latency_ms,
            "faults": self.faults.describe(),
        }

    # ------------------------------------------------------------------ faults
    def fault(self, kind, scope=None, times=None, rate=None, skip=0, **opts) -> int:
        """Switch on one fault; returns its id. See invoiz_sandbox.faults.KINDS for kinds and options.
        ``skip=N``: the first N matching requests pass before the fault starts (e.g. the API goes down mid-scan)."""
        return self.faults.add(kind, scope=scope, times=times, rate=rate, skip=skip, **opts).id

    def set_faults(self, *specs, faults=None):
        """Replace all faults: ``set_faults({"kind": "rate_limit", "times": 2}, ...)`` or ``faults=[...]``."""
        specs = list(specs) + list(faults or [])
        self.clear_faults()
        return [self.fault(**dict(s)) for s in specs]

    def clear_faults(self, kind=None):
        self.faults.clear(kind)
        return self.faults.describe()

    def list_faults(self):
        return self.faults.describe()

    # ------------------------------------------------------------------ tokens
    def issue_token(self) -> str:
        tok = "sbx_" + secrets.token_urlsafe(24)
        with self._tok_lock:
            self._tokens[tok] = {"issued": time.monotonic(), "uses": 0}
            self._issued.append(tok)
        return tok

    def issued_tokens(self) -> list:
        """Every bearer token issued so far, expired ones included (for tests that check no token reaches a log)."""
        with self._tok_lock:
            return list(self._issued)

    def expire_tokens(self):
        """Invalidate every token issued so far (the next API call with one gets 401)."""
        with self._tok_lock:
            n = len(self._tokens)
            self._tokens.clear()
        return n

    def _check_bearer(self, header, kind) -> bool:
        if not header or header[:7].lower() != "bearer ":
            return False
        tok = header[7:].strip()
        with self._tok_lock:
            rec = self._tokens.get(tok)
            if rec is None:
                return False
            for f in self.faults.active(kind, "token_expiry"):
                n, s = f.opts.get("after_requests"), f.opts.get("after_seconds")
                if (n is not None and rec["uses"] >= int(n)) or (
                    s is not None and time.monotonic() - max(rec["issued"], f.created) >= float(s)
                ):
                    del self._tokens[tok]
                    f.fired += 1
                    return False
            rec["uses"] += 1
            return True

    # ------------------------------------------------------------------ truth helpers for tests
    def invoice(self, invoice_id) -> dict:
        """The invoice as ``GET invoice/{id}`` returns it (the ``data.invoice`` object, variants applied)."""
        with self.dataset.lock:
            ds = self.dataset
            return ds.render_invoice(ds.invoice_canonical(ds.inv_idx(invoice_id)), self.variants)

    def invoice_row(self, invoice_id) -> dict:
        """The invoice as a ``GET invoice`` list row."""
        with self.dataset.lock:
            ds = self.dataset
            return ds.render_invoice(ds.invoice_canonical(ds.inv_idx(invoice_id)), self.variants, list_row=True)

    def contact(self, contact_id) -> dict:
        with self.dataset.lock:
            ds = self.dataset
            return ds.render_contact(ds.contact(ds.con_idx(contact_id)), self.variants)

    def invoice_ids(self) -> list:
        ds = self.dataset
        with ds.lock:
            return [ds.inv_id(i) for i in range(ds.n) if ds.state[i]]

    def contact_ids(self) -> list:
        ds = self.dataset
        with ds.lock:
            return [ds.con_id(i) for i in range(ds.nc) if not ds.c_deleted[i]]

    def invoices(self):
        for iid in self.invoice_ids():
            try:
                yield self.invoice(iid)
            except NotFound:
                continue

    def contacts(self):
        for cid in self.contact_ids():
            try:
                yield self.contact(cid)
            except NotFound:
                continue

    # ------------------------------------------------------------------ scenario actions
    # the Dataset's own methods (signature and docstring too): the dataset takes its lock itself
    create_invoice = _dataset_method("create_invoice")
    lock_invoice = _dataset_method("lock_invoice")
    update_invoice = _dataset_method("update_invoice")
    pay = _dataset_method("pay")
    partly_pay = _dataset_method("partly_pay")
    revert_payment = _dataset_method("revert_payment")
    dun = _dataset_method("dun")
    cancel = _dataset_method("cancel")
    delete_invoice = _dataset_method("delete_invoice")
    create_contact = _dataset_method("create_contact")
    update_contact = _dataset_method("update_contact")
    set_contact_email = _dataset_method("set_contact_email")
    delete_contact = _dataset_method("delete_contact")

    # the change kinds a sync must see (contract §6.1), under their own names
    def write_and_pay(self, customer_id=None, amount=None, date=None) -> int:
        """An invoice written *and* paid between two syncs (bank matching): it never shows an open state."""
        return self.dataset.create_invoice(customer_id=customer_id, state="paid", amount=amount, date=date)

    def delete_payment(self, invoice_id, payment_id=None):
        """A payment removed (paid → partiallyPaid or locked); the same as :meth:`revert_payment`."""
        return self.dataset.revert_payment(invoice_id, payment_id=payment_id)

    def set_raw_fields(self, kind, id, fields):
        """Serve raw API fields on one row: ``set_raw_fields("invoice", 100003, {"totalGross": "119,00"})``.
        Any JSON value (wrong types, NUL characters, 100 kB strings, unknown states); ``fields=None`` undoes it."""
        return self.dataset.set_raw_fields(kind, id, fields)

    def advance_clock(self, days=1):
        self.dataset.advance_clock(days)
        return self.today.isoformat()

    def set_today(self, today):
        import datetime as _dt

        with self.dataset.lock:
            self.dataset.today = _dt.date.fromisoformat(str(today)[:10])
            self.dataset._tick = 0
            self.dataset._touch()
        return self.today.isoformat()
