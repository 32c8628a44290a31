"""Many invoiz installations behind one sandbox server (fleet tests and benchmarks without 200 servers).

Python:  ``with FleetSandbox(installations=200, seed=42) as fleet: fleet.credentials("sandbox-installation-007")``
CLI:     ``invoiz-sandbox --installations 200 --seed 42`` prints the usual
         ``invoiz-sandbox listening on http://127.0.0.1:PORT/api/`` line.

How it works: every installation is an ordinary :class:`invoiz_sandbox.Sandbox` (its own deterministic dataset,
tokens, faults, counters and scenario control), built lazily on first use and never started itself; one HTTP server
routes each request to the installation it belongs to:

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
import io
import json
import math
import threading
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from .server import RequestCounter, Sandbox, _Handler, _Server

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


class _View:
    """What a request handler sees as its server while it answers for one installation."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox


class _FleetHandler(_Handler):
    def setup(self):
        self._fleet_server = self.server
        super().setup()

    def finish(self):
        self.server = self._fleet_server
        super().finish()

    def _dispatch(self, method):
        fleet: FleetSandbox = self._fleet_server.fleet
        self.server = self._fleet_server
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        try:
            if parts[:2] == ["_sandbox", "installations"] and len(parts) >= 4:
                if parts[2] not in fleet._id_set:
                    fleet.requests.hit("admin")
                    return self._error(
                        404, "NotFoundError", "unknown installation", {"installation": [{"code": "NOT_FOUND"}]}
                    )
                return self._as(fleet.installation(parts[2]), method, "/_sandbox/" + "/".join(parts[3:]))
            if parts[:1] == ["_sandbox"]:
                fleet.requests.hit("admin")
                return self._fleet_admin(method, parts[1:])
            if parts[:1] != ["api"]:
                return super()._dispatch(method)  # deep-link pages: no installation needed
            if method == "POST" and parts[1:] == ["auth", "token"]:
                return self._token_for_installation(method)
            auth = self.headers.get("Authorization") or ""
            owner = fleet._token_owner.get(auth[7:].strip()) if auth[:7].lower() == "bearer " else None
            if owner is None:
                fleet.requests.hit("unrouted")
                return self._error(401, "UnauthorizedError", "Unauthorized: missing, invalid or expired token")
            return self._as(owner, method, self.path)
        except OSError:
            self.close_connection = True

    def _as(self, installation: Sandbox, method: str, path: str):
        original = self.path
        self.server, self.path = _View(installation), path
        try:
            return super()._dispatch(method)
        finally:
            self.server, self.path = self._fleet_server, original

    def _token_for_installation(self, method):
        fleet: FleetSandbox = self._fleet_server.fleet
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except (ValueError, UnicodeDecodeError):
            body = {}
        wanted = body.get("installationId") if isinstance(body, dict) else None
        if not isinstance(wanted, str) or wanted not in fleet.installation_ids:
            fleet.requests.hit("unrouted")
            return self._error(
                401,
                "UnauthorizedError",
                "Invalid api key, secret or installation id",
                {"apiKey": [{"code": "INCORRECT"}]},
            )
        rfile = self.rfile
        self.rfile = io.BytesIO(raw)
        try:
            return self._as(fleet.installation(wanted), method, self.path)
        finally:
            self.rfile = rfile

    def _fleet_admin(self, method, parts):
        fleet: FleetSandbox = self._fleet_server.fleet
        if not self.client_address[0].startswith("127."):
            return self._error(403, "ForbiddenError", "admin endpoints are loopback only")
        if method == "GET" and parts == ["stats"]:
            return self._json(200, fleet.stats())
        if method == "GET" and parts == ["installations"]:
            return self._json(200, {"result": fleet.describe()})
        return self._error(
            404,
            "NotFoundError",
            "fleet sandbox: use GET /_sandbox/stats, GET /_sandbox/installations "
            "or /_sandbox/installations/<installation id>/<action>",
        )


class FleetSandbox:
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
        self._conns: set = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

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

    # ------------------------------------------------------------------ lifecycle (like Sandbox)
    def start(self) -> FleetSandbox:
        if self._server is not None:
            return self
        srv = _Server(("127.0.0.1", self.port), _FleetHandler)
        srv.fleet = self
        srv.sandbox = self  # _Handler.setup/finish track connections on it (so stop() can close them)
        self._server = srv
        self.port = srv.server_address[1]
        for sb in self.installations.values():
            sb.port = self.port
        self._thread = threading.Thread(
            target=srv.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"invoiz-fleet-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    stop = Sandbox.stop
    __enter__ = Sandbox.__enter__
    __exit__ = Sandbox.__exit__
    base_url = Sandbox.base_url
    api_url = Sandbox.api_url
    app_url = Sandbox.app_url

    def __repr__(self):
        return f"FleetSandbox(installations={len(self.installation_ids)}, seed={self.seed}, api_url={self.api_url!r})"
