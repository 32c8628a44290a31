"""The sandbox's HTTP transport: one :class:`SandboxServer` serves a :class:`Host`; its :class:`SandboxHandler` answers
web-app pages itself and every ``/api/…`` and ``/_sandbox/…`` request through the Sandbox that :meth:`Host.route` names
(a Sandbox routes to itself, a FleetSandbox (multi_tenant.py) to one of its installations). Credentials and tokens are
never logged.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import traceback
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple, Protocol
from urllib.parse import parse_qs, urlsplit

from .faults import REQUEST_KINDS


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


class Installation(Protocol):
    """What a :class:`Route` names: a Sandbox (server.py), which answers API and admin requests itself."""

    requests: RequestCounter

    def answer_api(self, request: SandboxHandler, method: str, api: list[str], query: dict) -> None: ...

    def answer_admin(self, request: SandboxHandler, method: str, parts: list[str]) -> None: ...


class Route(NamedTuple):
    """Who answers a request: a Sandbox and the path segments it sees (its own ``/api/…``, ``/_sandbox/…``)."""

    sandbox: Installation
    parts: list[str]


class SandboxServer(ThreadingHTTPServer):
    """The HTTP server of a :class:`Host`: its connections are tracked, so that stopping closes them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: Host, port: int):
        self.host = host
        self.connections: set = set()
        super().__init__(("127.0.0.1", port), SandboxHandler)


class SandboxHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests: web-app pages itself; ``/api/…`` and ``/_sandbox/…`` by the Sandbox that
    its host's :meth:`Host.route` names."""

    protocol_version = "HTTP/1.1"
    server_version = "invoiz-sandbox"
    sys_version = ""
    timeout = 60
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    server: SandboxServer
    log_entry: dict | None = None  # the request log's entry of the API request being answered (its status)

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
    def answer_bytes(self, status, body: bytes, ctype="application/json; charset=utf-8", headers=None):
        entry = self.log_entry
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
        self.answer_bytes(status, body, headers=headers)

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
        self.log_entry = None
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
                return sb.answer_admin(self, method, parts[1:])
            return sb.answer_api(self, method, parts[1:], query)
        except OSError:  # client went away / socket shut down by stop()
            self.close_connection = True
        except Exception:  # a sandbox bug: answer 500, print the traceback (no locals/secrets)
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            try:
                self.answer_error(500, "InternalServerError", "invoiz sandbox: internal error")
            except OSError:
                pass

    # ------------------------------------------------------------------ app pages & admin
    def _app_page(self, parts):
        if len(parts) == 2 and parts[0] in ("invoice", "customer") and parts[1].isdigit():
            label = "Rechnung" if parts[0] == "invoice" else "Kontakt"
            html = (
                f"<!doctype html><html lang=de><meta charset=utf-8><title>invoiz sandbox – {label} {parts[1]}"
                f"</title><h1>{label} {parts[1]}</h1><p>invoiz sandbox deep link.</p></html>"
            )
            return self.answer_bytes(200, html.encode("utf-8"), ctype="text/html; charset=utf-8")
        if not parts:
            return self.answer_bytes(
                200,
                b"<!doctype html><title>invoiz sandbox</title><p>API under /api/</p>",
                ctype="text/html; charset=utf-8",
            )
        self.answer_bytes(404, b"<!doctype html><title>404</title><p>Not found</p>", ctype="text/html; charset=utf-8")


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
