"""Small HTTP client helpers for the sandbox tests (plain requests, like a tap would use)."""

from __future__ import annotations

import re

import requests

ISO_MIDNIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}T00:00:00\.000Z$")
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def start_line_urls(line: str) -> tuple[str, str]:
    """The API and app URL of the console script's start line, read as invoiz-sandbox/README.md says: the word after
    ``listening on`` and the word after ``(web app`` (without its ``)``)."""
    api = line.split("listening on ", 1)[1].split()[0]
    app = line.split("(web app ", 1)[1].split()[0].rstrip(");")
    return api, app


def get_token(sb, session=None) -> str:
    c = sb.credentials
    r = (session or requests).post(
        sb.api_url + "auth/token",
        auth=(c["api_key"], c["api_key_secret"]),
        json={"installationId": c["installation_id"]},
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["token"]


class Client:
    def __init__(self, sb):
        self.sb = sb
        self.s = requests.Session()
        self.token = get_token(sb, self.s)

    def get(self, path, timeout=10, **params):
        return self.s.get(
            self.sb.api_url + path,
            params=params or None,
            timeout=timeout,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
        )

    def ok(self, path, **params):
        r = self.get(path, **params)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        return r.json()

    def scan(self, path="invoice", limit=20, **params):
        """Page by offset until a short page; returns all rows."""
        rows, offset = [], 0
        while True:
            j = self.ok(path, offset=offset, limit=limit, **params)
            rows.extend(j["data"])
            if len(j["data"]) < limit:
                return rows
            offset += limit

    def admin(self, action, **args):
        r = self.s.post(f"{self.sb.base_url}/_sandbox/{action}", json=args, timeout=10)
        return r
