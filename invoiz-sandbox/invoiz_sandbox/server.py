"""The invoiz sandbox: a local HTTP server that follows docs/invoiz-api.md (the reconstructed contract).

Python:  ``with Sandbox(seed=42, invoices=200) as sb: requests.get(sb.api_url + "invoice", ...)``
(the console script is cli.py).

One :class:`SandboxServer` serves a :class:`Host`; its :class:`SandboxHandler` answers web-app pages itself and every
``/api/…`` and ``/_sandbox/…`` request through the Sandbox that :meth:`Host.route` names: a Sandbox routes to itself,
a FleetSandbox (multi_tenant.py) to one of its installations. Credentials and tokens are never logged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import secrets
import socket
import sys
import threading
import time
import traceback
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from .data import CONTACT_ORDER_BY, INVOICE_FILTERS, INVOICE_ORDER_BY, Dataset, NotFound, SandboxError
from .faults import REQUEST_KINDS, FaultSet

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
DEFAULT_LIMIT = 20
LETTER_ELEMENTS = {
    "sender": "Muster Handwerk GmbH · Hauptstraße 1 · 10115 Berlin",
    "letterHeader": {"companyName": "Muster Handwerk GmbH", "logo": None},
    "letterFooter": [
        {"column": 1, "text": "Muster Handwerk GmbH\nHauptstraße 1\n10115 Berlin"},
        {"column": 2, "text": "Geschäftsführer: Jürgen Weiß\nAmtsgericht Berlin HRB 12345"},
        {"column": 3, "text": "IBAN DE02 1203 0000 0000 2020 51\nBIC BYLADEM1001"},
    ],
}


class RequestCounter(Counter):
    """Requests received per kind (faulted ones included)."""

    def __init__(self):
        super().__init__({k: 0 for k in (*REQUEST_KINDS, "admin", "other")})
        self._lock = threading.Lock()

    def hit(self, kind):
        with self._lock:
            self[kind] += 1

    def reset(self):
        with self._lock:
            for k in list(self):
                self[k] = 0


class Route(NamedTuple):
    """Who answers a request: a :class:`Sandbox` and the path segments it sees (its own ``/api/…``, ``/_sandbox/…``)."""

    sandbox: Sandbox
    parts: list[str]


class SandboxServer(ThreadingHTTPServer):
    """The HTTP server of a :class:`Host`: its connections are tracked, so that stopping closes them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: Host, port: int):
        self.host = host
        self.connections: set = set()
        super().__init__(("127.0.0.1", port), SandboxHandler)


def _bool(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


class SandboxHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests: web-app pages itself; ``/api/…`` and ``/_sandbox/…`` by the Sandbox that
    its host's :meth:`Host.route` names."""

    protocol_version = "HTTP/1.1"
    server_version = "invoiz-sandbox"
    sys_version = ""
    timeout = 60
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    server: SandboxServer

    # never log (requests would contain tokens in headers only, but keep stderr clean anyway)
    def log_message(self, format, *args):
        pass

    def setup(self):
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.connections.discard(self.connection)

    # ------------------------------------------------------------------ plumbing (also for a Host's route())
    def _send(self, status, body: bytes, ctype="application/json; charset=utf-8", headers=None):
        entry = getattr(self, "_log_entry", None)
        if entry is not None:
            entry["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def answer_json(self, status, obj, headers=None, corrupt=False):
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if corrupt:
            body = body[: max(1, len(body) // 2)] + b'{"\xc3'
        self._send(status, body, headers=headers)

    def answer_error(self, status, name, message, meta=None, headers=None):
        self.answer_json(status, {"name": name, "message": message, "meta": meta or {}}, headers=headers)

    def answer_bad_credentials(self):
        self.answer_error(
            401, "UnauthorizedError", "Invalid api key, secret or installation id", {"apiKey": [{"code": "INCORRECT"}]}
        )

    def answer_unauthorized(self):
        self.answer_error(401, "UnauthorizedError", "Unauthorized: missing, invalid or expired token")

    def raw_body(self) -> bytes:
        """The request body, read once per request (a route may read it before the Sandbox that answers)."""
        if self._raw_body is None:
            n = int(self.headers.get("Content-Length") or 0)
            self._raw_body = self.rfile.read(n) if n else b""
        return self._raw_body

    def json_body(self):
        """The body as JSON ({} when empty); ValueError/UnicodeDecodeError when it is not JSON."""
        raw = self.raw_body()
        return json.loads(raw.decode("utf-8")) if raw else {}

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ routing
    def _dispatch(self, method):
        self._raw_body = None
        host = self.server.host
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if parts[:1] not in (["_sandbox"], ["api"]):
                host.requests.hit("other")
                return self._app_page(parts)
            if parts[:1] == ["_sandbox"] and not self.client_address[0].startswith("127."):
                return self.answer_error(403, "ForbiddenError", "admin endpoints are loopback only")
            route = host.route(self, method, parts)
            if route is None:  # the host answered (its own admin endpoints, a request no installation owns)
                return None
            sb, parts = route
            if parts[:1] == ["_sandbox"]:
                sb.requests.hit("admin")
                return self._admin(sb, method, parts[1:])
            return self._api_request(sb, method, parts[1:], query)
        except OSError:  # client went away / socket shut down by stop()
            self.close_connection = True
        except Exception:  # a sandbox bug: answer 500, print the traceback (no locals/secrets)
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            try:
                self.answer_error(500, "InternalServerError", "invoiz sandbox: internal error")
            except OSError:
                pass

    def _api_request(self, sb: Sandbox, method, api, query):
        kind = None
        if method == "POST" and api == ["auth", "token"]:
            kind = "token"
        elif method == "GET" and api == ["invoice"]:
            kind = "invoice_list"
        elif method == "GET" and len(api) == 2 and api[0] == "invoice":
            kind = "invoice_detail"
        elif method == "GET" and api == ["customer"]:
            kind = "customer_list"
        elif method == "GET" and len(api) == 2 and api[0] == "customer":
            kind = "customer_detail"
        sb.requests.hit(kind or "other")
        if kind is None:
            self.raw_body()  # drained, so keep-alive stays in sync
            return self.answer_error(
                404,
                "NotFoundError",
                f"{method} /{'/'.join(['api', *api])} is not part of the sandbox",
                {"path": [{"code": "NOT_FOUND"}]},
            )
        self._log_entry = sb._request_started(kind, query)
        try:
            return self._api(sb, kind, api, query)
        finally:
            self._log_entry = None
            sb._request_finished(kind)

    # ------------------------------------------------------------------ API
    def _api(self, sb: Sandbox, kind, api, query):
        # latency (global + fault)
        delay = sb.latency_ms / 1000.0
        for f in sb.faults.active(kind, "latency"):
            if f.take():
                delay += float(f.opts["ms"]) / 1000.0
        if delay > 0:
            time.sleep(delay)
        corrupt = False
        for f in sb.faults.active(kind):
            if f.kind in ("latency", "token_expiry", "page_shift", "duplicate"):
                continue
            if not f.take():
                continue
            if f.kind == "connection_reset":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if f.kind == "rate_limit":
                return self.answer_error(
                    429, "TooManyRequestsError", "Too many requests", headers={"Retry-After": f.opts["retry_after"]}
                )
            if f.kind == "server_error":
                return self.answer_error(int(f.opts["status"]), "InternalServerError", "Internal server error")
            if f.kind == "html_error":
                st = int(f.opts["status"])
                html = (
                    f"<html><head><title>{st} Bad Gateway</title></head><body><center><h1>{st} "
                    f"{'Bad Gateway' if st == 502 else 'Service Temporarily Unavailable'}</h1></center>"
                    "<hr><center>nginx</center></body></html>\n"
                ).encode()
                return self._send(st, html, ctype="text/html")
            if f.kind == "slow":
                time.sleep(float(f.opts["seconds"]))
            if f.kind == "malformed_json":
                corrupt = True
        if kind == "token":
            return self._token(sb, corrupt)
        if not sb._check_bearer(self.headers.get("Authorization"), kind):
            return self.answer_unauthorized()
        with sb.dataset.lock:
            try:
                if kind == "invoice_list":
                    status, obj = 200, sb._invoice_list(query)
                elif kind == "invoice_detail":
                    status, obj = 200, sb._invoice_detail(api[1])
                elif kind == "customer_list":
                    status, obj = 200, sb._customer_list(query)
                else:
                    status, obj = 200, sb._customer_detail(api[1])
            except SandboxError as e:
                status = e.status
                if isinstance(e, NotFound) and "not_found_400" in sb.variants:
                    status = 400
                name = "NotFoundError" if status == 404 else "ValidationError"
                obj = {"name": name, "message": str(e), "meta": {e.field: [{"code": e.code}]}}
        self.answer_json(status, obj, corrupt=corrupt)

    def _token(self, sb: Sandbox, corrupt):
        try:
            body = self.json_body()
        except (ValueError, UnicodeDecodeError):
            return self.answer_error(400, "ValidationError", "Body is not valid JSON", {"body": [{"code": "INVALID"}]})
        user = pw = None
        auth = self.headers.get("Authorization") or ""
        if auth[:6].lower() == "basic ":
            try:
                user, _, pw = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = pw = None
        cred = sb.credentials
        ok = (
            user == cred["api_key"]
            and pw == cred["api_key_secret"]
            and (
                not cred["installation_id"]
                or (isinstance(body, dict) and body.get("installationId") == cred["installation_id"])
            )
        )
        if not ok:
            return self.answer_bad_credentials()
        self.answer_json(200, {"token": sb.issue_token()}, corrupt=corrupt)

    # ------------------------------------------------------------------ app pages & admin
    def _app_page(self, parts):
        if len(parts) == 2 and parts[0] in ("invoice", "customer") and parts[1].isdigit():
            label = "Rechnung" if parts[0] == "invoice" else "Kontakt"
            html = (
                f"<!doctype html><html lang=de><meta charset=utf-8><title>invoiz sandbox – {label} {parts[1]}"
                f"</title><h1>{label} {parts[1]}</h1><p>invoiz sandbox deep link.</p></html>"
            )
            return self._send(200, html.encode("utf-8"), ctype="text/html; charset=utf-8")
        if not parts:
            return self._send(
                200,
                b"<!doctype html><title>invoiz sandbox</title><p>API under /api/</p>",
                ctype="text/html; charset=utf-8",
            )
        self._send(404, b"<!doctype html><title>404</title><p>Not found</p>", ctype="text/html; charset=utf-8")

    def _admin(self, sb: Sandbox, method, parts):
        if method == "GET" and parts == ["stats"]:
            return self.answer_json(200, sb.stats())
        if method != "POST" or len(parts) != 1:
            return self.answer_error(404, "NotFoundError", "use POST /_sandbox/<action> or GET /_sandbox/stats")
        try:
            args = self.json_body()
        except (ValueError, UnicodeDecodeError):
            return self.answer_error(400, "ValidationError", "Body is not valid JSON", {"body": [{"code": "INVALID"}]})
        if not isinstance(args, dict):
            return self.answer_error(
                400, "ValidationError", "Body must be a JSON object", {"body": [{"code": "INVALID"}]}
            )
        action = parts[0]
        fn = sb.ADMIN_ACTIONS.get(action)
        if fn is None:
            return self.answer_error(
                404,
                "NotFoundError",
                f"unknown action {action!r}",
                {"action": [{"code": "NOT_FOUND", "known": sorted(sb.ADMIN_ACTIONS)}]},
            )
        try:
            result = getattr(sb, fn)(**args)
        except SandboxError as e:
            return self.answer_error(
                e.status,
                "ValidationError" if e.status == 400 else "NotFoundError",
                str(e),
                {e.field: [{"code": e.code}]},
            )
        except (TypeError, ValueError) as e:
            return self.answer_error(400, "ValidationError", str(e), {"args": [{"code": "INVALID"}]})
        if hasattr(result, "__next__"):
            result = list(result)
        self.answer_json(200, {"result": result})


def _dataset_method(name: str):
    """A Sandbox method that calls the Dataset method of the same name (whose signature and docstring it shows)."""
    wrapped = getattr(Dataset, name)

    @functools.wraps(wrapped)
    def method(self, *args, **kwargs):
        return getattr(self.dataset, name)(*args, **kwargs)

    return method


class Host:
    """What one HTTP server serves: a :class:`Sandbox` (itself) or a FleetSandbox (many installations,
    multi_tenant.py). :meth:`route` is the extension point; start/stop, the URLs and the start line are shared."""

    thread_name = "invoiz-sandbox"
    port: int
    requests: RequestCounter
    _server: SandboxServer | None = None
    _thread: threading.Thread | None = None

    def route(self, request: SandboxHandler, method: str, parts: list[str]) -> Route | None:
        """Which Sandbox answers this ``/api/…`` or ``/_sandbox/…`` request, and the path it sees; None when the host
        has answered it itself (``request.answer_json`` / ``answer_error``)."""
        raise NotImplementedError

    def start_line_details(self) -> str:
        """The part of the start line after the URLs (for people; scripts read only the URLs)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        if self._server is not None:
            return self
        srv = SandboxServer(self, self.port)
        self._server = srv
        self.port = srv.server_address[1]
        self._thread = threading.Thread(
            target=srv.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"{self.thread_name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self):
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.shutdown()
        for c in list(srv.connections):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        srv.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    @property
    def app_url(self) -> str:
        return self.base_url

    def start_line(self) -> str:
        """The console script's line when it is ready: the API URL is the word after ``listening on``, the app URL
        the word after ``(web app`` (invoiz-sandbox/README.md)."""
        return (
            f"invoiz-sandbox listening on {self.api_url} (web app {self.app_url}); {self.start_line_details()}. "
            "Ctrl-C stops it."
        )


class Sandbox(Host):
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

    # ------------------------------------------------------------------ list / detail (called under dataset.lock)
    def _paging(self, query):
        def intarg(name, default):
            raw = query.get(name)
            if raw in (None, ""):
                return default
            try:
                return int(raw)
            except ValueError:
                raise SandboxError(f"{name} must be an integer", field=name, code="NO_INTEGER") from None

        offset = intarg("offset", 0)
        limit = intarg("limit", DEFAULT_LIMIT)
        if offset < 0:
            raise SandboxError("offset must not be negative", field="offset", code="TOO_SMALL")
        if limit < 1:
            raise SandboxError("limit must be positive", field="limit", code="TOO_SMALL")
        return offset, min(limit, self.max_page_size)

    def _invoice_list(self, query):
        ds = self.dataset
        offset, limit = self._paging(query)
        order_by = query.get("orderBy") or None
        if order_by is not None and order_by not in INVOICE_ORDER_BY:
            raise SandboxError(f"orderBy {order_by!r} is not supported", field="orderBy", code="INVALID")
        desc = _bool(query.get("desc", "false"))
        flt = query.get("filter") or "all"
        if flt not in INVOICE_FILTERS:
            raise SandboxError(f"filter {flt!r} is not supported", field="filter", code="INVALID")
        filter_counts = ds.invoice_filter_counts()
        if "filter_ignored" in self.variants:
            flt = "all"
        if flt == "locked" and "locked_includes_dunned" in self.variants:
            flt = "open"
            filter_counts = {**filter_counts, "locked": {"count": len(ds.invoice_order(order_by, desc, flt))}}
        order = ds.invoice_order(order_by, desc, flt)
        search = (query.get("searchText") or "").strip()
        if search:
            order = ds.search_invoices(order, search)
        # fault: duplicate row (page boundary shifted by one for the rest of this scan)
        eff = offset
        for f in self.faults.active("invoice_list", "duplicate"):
            if offset == 0 and f.state.get("active"):
                self.faults.remove(f)  # a new scan starts: the fault is used up
                continue
            if f.state.get("active") and offset > 0:
                eff = offset - 1
        detail = bool(self.variants & {"list_positions", "updated_at"})  # otherwise list fields suffice
        rows = [
            ds.render_invoice(ds.invoice_canonical(i, detail), self.variants, list_row=True)
            for i in order[eff : eff + limit]
        ]
        # while shifted, count one more row (as if one had been inserted before the offset), so a client that
        # stops at offset >= meta.count still sees every row
        count = len(order) + (1 if eff != offset else 0)
        meta = {"count": count} if "no_meta_filter" in self.variants else {"count": count, "filter": filter_counts}
        result = {"meta": meta, "data": rows}
        # page-level faults that act after a page has been served
        for f in self.faults.active("invoice_list", "duplicate"):
            f.state["pages"] = f.state.get("pages", 0) + 1
            if f.state["pages"] >= int(f.opts["after_page"]) and not f.state.get("active"):
                f.state["active"] = True
                f.fired += 1
        for f in self.faults.active("invoice_list", "page_shift"):
            f.state["pages"] = f.state.get("pages", 0) + 1
            if f.state["pages"] >= int(f.opts["after_page"]):
                f.state["inserted"] = ds.insert_before(order_by, desc, int(f.opts["insert"]))
                f.fired += 1
                self.faults.remove(f)
        return result

    def _invoice_detail(self, ident):
        ds = self.dataset
        inv = ds.render_invoice(ds.invoice_canonical(ds.inv_idx(ident)), self.variants)
        if "detail_flat" in self.variants:
            return {"meta": {}, "data": inv}
        return {"meta": {}, "data": {"invoice": inv, "letterElements": LETTER_ELEMENTS}}

    def _customer_list(self, query):
        ds = self.dataset
        offset, limit = self._paging(query)
        order_by = query.get("orderBy") or None
        if order_by is not None and order_by not in CONTACT_ORDER_BY:
            raise SandboxError(f"orderBy {order_by!r} is not supported", field="orderBy", code="INVALID")
        order = ds.contact_order(order_by, _bool(query.get("desc", "false")))
        search = (query.get("searchText") or "").strip()
        if search:
            order = ds.search_contacts(order, search)
        rows = [ds.render_contact(ds.contact(i), self.variants) for i in order[offset : offset + limit]]
        return {"meta": {"count": len(order), "filter": {"all": {"count": len(order)}}}, "data": rows}

    def _customer_detail(self, ident):
        ds = self.dataset
        return {"meta": {}, "data": ds.render_contact(ds.contact(ds.con_idx(ident)), self.variants)}

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
