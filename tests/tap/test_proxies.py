"""The tap honours the proxy settings of its environment (HTTP_PROXY, NO_PROXY), as requests does: resolved once per
scheme and host (tap_invoiz.paging.SessionSetup), not per request, and still for every request."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from tap_helpers import run_tap, sandbox_config


class _ForwardingProxy(BaseHTTPRequestHandler):
    """A plain HTTP proxy on loopback: forwards each request (absolute URI) to its host and counts it."""

    seen: list[str]

    def _forward(self) -> None:
        self.seen.append(self.path)
        target = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        path = target.path + (f"?{target.query}" if target.query else "")
        upstream.request(self.command, path, body=body or None, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    do_GET = do_POST = _forward

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def proxy():
    handler = type("Proxy", (_ForwardingProxy,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()


def test_every_request_goes_through_the_proxy_of_the_environment(invoiz_sandbox, proxy, monkeypatch):
    url, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    sb = invoiz_sandbox
    run = run_tap(sandbox_config(sb, page_size=10))
    assert run.ids("invoices") == set(sb.invoice_ids())
    listed = sb.requests["invoice_list"] + sb.requests["customer_list"]
    assert listed >= 4
    # the token request and every list page went through the proxy
    assert sum("/api/invoice" in path or "/api/customer" in path for path in seen) == listed
    assert any(path.endswith("/auth/token") for path in seen)


def test_no_proxy_for_the_api_host_sends_directly(invoiz_sandbox, proxy, monkeypatch):
    url, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    sb = invoiz_sandbox
    run = run_tap(sandbox_config(sb, page_size=10))
    assert run.ids("invoices") == set(sb.invoice_ids())
    assert seen == []
