"""Many invoiz installations behind one sandbox server (fleet tests and benchmarks without 200 servers).

Python:  ``with FleetSandbox(installations=200, seed=42) as fleet: fleet.credentials("sandbox-installation-007")``
CLI:     ``invoiz-sandbox --installations 200 --seed 42`` prints the usual
         ``invoiz-sandbox listening on http://127.0.0.1:PORT/api/`` line.

How it works: every installation is an ordinary :class:`invoiz_sandbox.Sandbox` (its own deterministic dataset,
tokens, faults, counters and scenario control), built lazily on first use and never started itself; one HTTP server
(server.py's, with :meth:`FleetSandbox.route` as its ``Host.route``) routes each request to the installation it
belongs to:

* ``POST auth/token`` by the ``installationId`` in its body (an unknown installation → 401, as invoiz answers);
* every other API call by its bearer token (a token is valid only for the installation that issued it);
* ``/_sandbox/installations/<installation id>/<action>`` → that installation's admin endpoint (same actions as a
  single sandbox's ``/_sandbox/<action>``); ``GET /_sandbox/stats`` and ``GET /_sandbox/installations`` describe
  the fleet.

Sizes follow a deterministic, skewed distribution (like an agency's customers): most installations have 100–2,000
invoices, about 1 in 10 has 2,000–20,000 and about 1 in 35 more than 20,000 (see :func:`installation_size`).
``invoices=N`` gives every installation N invoices instead (tests); ``scale`` multiplies the distribution.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterable
from urllib.parse import unquote

from .host import Host, RequestCounter, Route, SandboxHandler
from .server import Sandbox

DEFAULT_ID_PREFIX = "sandbox-installation-"
FLEET_API_KEY = "sandbox-key"
FLEET_API_KEY_SECRET = "sandbox-secret"


def _unit(seed: int, installation_id: str, salt: str) -> float:
    """A number in [0, 1) from the seed and the installation id (sha256: identical in every process)."""
    digest = hashlib.sha256(f"{seed}|{installation_id}|{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def installation_seed(seed: int, installation_id: str) -> int:
    return int(_unit(seed, installation_id, "seed") * 1_000_000_007)


def installation_size(seed: int, installation_id: str, scale: float = 1.0) -> int:
    """Invoices of one installation: log-uniform 100–2,000 (≈ 87 %), 2,000–20,000 (≈ 10 %), 20,000–60,000 (≈ 3 %)."""
    u, v = _unit(seed, installation_id, "band"), _unit(seed, installation_id, "size")
    low, high = (100, 2_000) if u < 0.87 else (2_000, 20_000) if u < 0.97 else (20_000, 60_000)
    return max(1, round(scale * math.exp(math.log(low) + v * (math.log(high) - math.log(low)))))


class _Installation(Sandbox):
    """One installation of the fleet: a Sandbox that is never started; its tokens are registered with the fleet."""

    def __init__(self, fleet: FleetSandbox, **kwargs):
        self._fleet = fleet
        super().__init__(**kwargs)

    def issue_token(self) -> str:
        token = super().issue_token()
        self._fleet._token_owner[token] = self
        return token

    def start(self):  # the fleet's server serves it
        raise RuntimeError("an installation of a FleetSandbox is served by the fleet; start the FleetSandbox")

    def stop(self):
        pass


class FleetSandbox(Host):
    """One server, many installations; see the module docstring."""

    def __init__(
        self,
        installations: int | Iterable[str] = 3,
        seed: int = 42,
        invoices: int | None = None,
        contacts: int | None = None,
        scale: float = 1.0,
        today=None,
        latency_ms: float = 0,
        max_page_size: int = 500,
        port: int = 0,
        id_prefix: str = DEFAULT_ID_PREFIX,
        api_key: str = FLEET_API_KEY,
        api_key_secret: str = FLEET_API_KEY_SECRET,
        mix: str = "default",
    ):
        if isinstance(installations, int):
            ids = [f"{id_prefix}{i:03d}" for i in range(1, installations + 1)]
        else:
            ids = [str(i) for i in installations]
        if len(set(ids)) != len(ids) or not ids:
            raise ValueError("installation ids must be distinct and at least one")
        self.installation_ids: list[str] = ids
        self._id_set = frozenset(ids)
        self.seed, self.invoices, self.contacts, self.scale = int(seed), invoices, contacts, float(scale)
        self.today, self.latency_ms, self.max_page_size = today, float(latency_ms), int(max_page_size)
        self.api_key, self.api_key_secret, self.mix = api_key, api_key_secret, mix
        self.port = int(port)
        self.installations: dict[str, _Installation] = {}
        self._build_lock = threading.Lock()
        self._token_owner: dict[str, Sandbox] = {}
        self.requests = RequestCounter()
        self.requests["unrouted"] = 0

    # ------------------------------------------------------------------ installations
    def size(self, installation_id: str) -> int:
        if self.invoices is not None:
            return int(self.invoices)
        return installation_size(self.seed, installation_id, self.scale)

    def credentials(self, installation_id: str) -> dict:
        """The credentials the installation accepts (demo values, not secrets)."""
        if installation_id not in self._id_set:
            raise KeyError(installation_id)
        if installation_id in self.installations:
            return dict(self.installations[installation_id].credentials)
        return {"api_key": self.api_key, "api_key_secret": self.api_key_secret, "installation_id": installation_id}

    def installation(self, installation_id: str) -> Sandbox:
        """The installation's Sandbox (scenario control, faults, counters), built on first use."""
        found = self.installations.get(installation_id)
        if found is not None:
            return found
        if installation_id not in self._id_set:
            raise KeyError(installation_id)
        with self._build_lock:
            found = self.installations.get(installation_id)
            if found is None:
                found = _Installation(
                    self,
                    seed=installation_seed(self.seed, installation_id),
                    invoices=self.size(installation_id),
                    contacts=self.contacts,
                    today=self.today,
                    latency_ms=self.latency_ms,
                    max_page_size=self.max_page_size,
                    port=self.port,
                    credentials=self.credentials(installation_id),
                    mix=self.mix,
                )
                self.installations[installation_id] = found
        return found

    def describe(self) -> list[dict]:
        return [
            {"installation_id": i, "invoices": self.size(i), "built": i in self.installations}
            for i in self.installation_ids
        ]

    def stats(self) -> dict:
        built = {i: sb.stats()["requests"] for i, sb in self.installations.items()}
        totals: dict[str, int] = {}
        for per_kind in built.values():
            for kind, n in per_kind.items():
                totals[kind] = totals.get(kind, 0) + n
        return {
            "installations": len(self.installation_ids),
            "built": len(built),
            "requests": totals,
            "unrouted_requests": self.requests["unrouted"],
            "per_installation": built,
        }

    # ------------------------------------------------------------------ serving (see Host)
    thread_name = "invoiz-fleet-sandbox"

    def start(self) -> FleetSandbox:
        super().start()
        for sb in self.installations.values():
            sb.port = self.port
        return self

    def start_line_details(self) -> str:
        ids = self.installation_ids
        return (
            f"{len(ids)} installations {ids[0]} … {ids[-1]}; credentials: api_key={self.api_key} "
            f"api_key_secret={self.api_key_secret} installation_id=<one of them>"
        )

    def route(self, request: SandboxHandler, method: str, parts: list[str]) -> Route | None:
        """An installation's admin endpoint by the id in its path, ``auth/token`` by the ``installationId`` in its
        body, every other API call by its bearer token; the fleet's own admin endpoints are answered here."""
        if parts[0] == "_sandbox":
            return self._admin_route(request, method, parts[1:])
        if method == "POST" and parts[1:] == ["auth", "token"]:
            try:
                body = request.json_body()
            except (ValueError, UnicodeDecodeError):
                body = {}
            wanted = body.get("installationId") if isinstance(body, dict) else None
            if isinstance(wanted, str) and wanted in self._id_set:
                return Route(self.installation(wanted), parts)
            self.requests.hit("unrouted")
            return request.answer_bad_credentials()
        auth = request.headers.get("Authorization") or ""
        owner = self._token_owner.get(auth[7:].strip()) if auth[:7].lower() == "bearer " else None
        if owner is not None:
            return Route(owner, parts)
        self.requests.hit("unrouted")
        return request.answer_unauthorized()

    def _admin_route(self, request: SandboxHandler, method: str, parts: list[str]) -> Route | None:
        if parts[:1] == ["installations"] and len(parts) >= 3:
            installation_id = unquote(parts[1])
            if installation_id in self._id_set:
                return Route(self.installation(installation_id), ["_sandbox", *parts[2:]])
            self.requests.hit("admin")
            return request.answer_error(
                404, "NotFoundError", "unknown installation", {"installation": [{"code": "NOT_FOUND"}]}
            )
        self.requests.hit("admin")
        if method == "GET" and parts == ["stats"]:
            return request.answer_json(200, self.stats())
        if method == "GET" and parts == ["installations"]:
            return request.answer_json(200, {"result": self.describe()})
        return request.answer_error(
            404,
            "NotFoundError",
            "fleet sandbox: use GET /_sandbox/stats, GET /_sandbox/installations "
            "or /_sandbox/installations/<installation id>/<action>",
        )

    def __repr__(self):
        return f"FleetSandbox(installations={len(self.installation_ids)}, seed={self.seed}, api_url={self.api_url!r})"
