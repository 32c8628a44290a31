"""Fault injection rules for the invoiz sandbox.

A fault is ``Fault(kind, scope=None, times=None, rate=None, **opts)``:

* ``scope``: request kind(s) it applies to (``token``, ``invoice_list``, ``invoice_detail``, ``customer_list``,
  ``customer_detail``); ``None`` = every API request.  Admin requests are never faulted.
* ``times``: trigger on the next N matching requests, then the fault is used up.
* ``rate``: trigger on a share (0..1) of matching requests, drawn from a seeded RNG (reproducible).
* neither ``times`` nor ``rate``: the kind's default (see ``KINDS``).
* ``skip=N`` (any kind but page_shift/duplicate/latency/token_expiry): the first N matching requests pass untouched, e.g. an API that
  goes down after the second page.
"""

from __future__ import annotations

import random
import threading
import time

REQUEST_KINDS = ("token", "invoice_list", "invoice_detail", "customer_list", "customer_detail")

# kind -> (default times, allowed options with defaults)
KINDS = {
    "rate_limit": (1, {"retry_after": 1}),  # 429 + Retry-After
    "server_error": (1, {"status": 500}),  # 500/502/503 JSON error body
    "html_error": (1, {"status": 502}),  # 502/503 with an HTML page (proxy error)
    "malformed_json": (1, {}),  # 200, application/json, truncated body
    "slow": (1, {"seconds": 5.0}),  # sleep before answering
    "latency": (None, {"ms": 50}),  # fixed latency on every matching request
    "connection_reset": (1, {}),  # close the socket without an answer
    "token_expiry": (None, {"after_requests": None, "after_seconds": None}),  # tokens expire → 401
    "page_shift": (1, {"after_page": 1, "insert": 3}),  # insert rows sorting before the current offset
    "duplicate": (1, {"after_page": 1}),  # next pages start one row earlier (one row twice)
}
ALIASES = {
    "429": "rate_limit",
    "5xx": "server_error",
    "500": "server_error",
    "502": "server_error",
    "503": "server_error",
    "timeout": "slow",
    "token_expired": "token_expiry",
    "expire_tokens": "token_expiry",
    "html": "html_error",
    "malformed": "malformed_json",
    "duplicate_record": "duplicate",
    "reset": "connection_reset",
}


class Fault:
    def __init__(self, kind: str, scope=None, times=None, rate=None, seed: int = 0, fault_id: int = 1, skip=0, **opts):
        alias_status = int(kind) if kind in ("500", "502", "503") else None
        kind = ALIASES.get(kind, kind)
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(KINDS)}")
        default_times, allowed = KINDS[kind]
        unknown = set(opts) - set(allowed)
        if unknown:
            raise ValueError(f"fault {kind}: unknown options {sorted(unknown)}; allowed: {sorted(allowed)}")
        if isinstance(scope, str):
            scope = (scope,)
        if scope is not None:
            bad = set(scope) - set(REQUEST_KINDS)
            if bad:
                raise ValueError(f"unknown scope {sorted(bad)}; known: {REQUEST_KINDS}")
            scope = frozenset(scope)
        if kind in ("page_shift", "duplicate"):
            scope = frozenset({"invoice_list"}) if scope is None else scope
        self.id = fault_id
        self.kind = kind
        self.scope = scope
        self.rate = None if rate is None else float(rate)
        self.times = None if self.rate is not None else (default_times if times is None else int(times))
        self.opts = {**allowed, **opts}
        if alias_status and "status" not in opts:
            self.opts["status"] = alias_status
        if kind == "server_error" and int(self.opts["status"]) not in (500, 502, 503, 504):
            raise ValueError("server_error status must be 500, 502, 503 or 504")
        if kind == "html_error" and int(self.opts["status"]) not in (500, 502, 503, 504):
            raise ValueError("html_error status must be 500, 502, 503 or 504")
        self._rng = random.Random(seed * 1000003 + self.id)
        self.created = time.monotonic()
        self.fired = 0
        self.skip = max(0, int(skip or 0))  # matching requests still to let through before the fault starts
        self.state: dict = {}  # per-kind bookkeeping (pages seen, shift active, …)

    def matches(self, kind: str) -> bool:
        return self.scope is None or kind in self.scope

    def exhausted(self) -> bool:
        return self.times is not None and self.times <= 0

    def take(self) -> bool:
        """Decide whether this fault fires for one matching request (consumes one of ``times``)."""
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.rate is not None:
            hit = self._rng.random() < self.rate
        elif self.times is None:
            hit = True
        else:
            hit = self.times > 0
            if hit:
                self.times -= 1
        if hit:
            self.fired += 1
        return hit

    def describe(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "scope": sorted(self.scope) if self.scope else None,
            "times_left": self.times,
            "rate": self.rate,
            "opts": self.opts,
            "fired": self.fired,
            "skip_left": self.skip,
        }


class FaultSet:
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.lock = threading.Lock()
        self.items: list[Fault] = []
        self._next_id = 1

    def add(self, kind, **kw) -> Fault:
        with self.lock:
            f = Fault(kind, seed=self.seed, fault_id=self._next_id, **kw)  # seeded per sandbox: reproducible
            self._next_id += 1
            self.items.append(f)
        return f

    def clear(self, kind=None):
        with self.lock:
            if kind is None:
                self.items.clear()
            else:
                kind = ALIASES.get(kind, kind)
                self.items[:] = [f for f in self.items if f.kind != kind and f.id != kind]

    def remove(self, fault):
        with self.lock:
            self.items[:] = [f for f in self.items if f is not fault]

    def active(self, kind: str, fault_kind: str | None = None) -> list[Fault]:
        with self.lock:
            self.items[:] = [f for f in self.items if not f.exhausted() or f.kind in ("page_shift", "duplicate")]
            return [f for f in self.items if f.matches(kind) and (fault_kind is None or f.kind == fault_kind)]

    def describe(self) -> list:
        with self.lock:
            return [f.describe() for f in self.items]
