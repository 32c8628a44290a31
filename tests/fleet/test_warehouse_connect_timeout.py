"""A warehouse that takes the connection and never answers (a hung server, a half-open proxy) fails a fleet step's
PostgreSQL connection after `warehouse.CONNECT_TIMEOUT` with libpq's "timeout expired", instead of holding the step
(and its pool slot) until someone notices: the advisory locks of the schema step and of pool creation, the marts'
and row checks' connection, and the queries of a failure message all connect through it."""

from __future__ import annotations

import socket
import threading

import pytest

from invoiz_ops.fleet import warehouse

# far above the patched time-out; only reached when a connection waits for an answer that never comes
HANG = 60


@pytest.fixture
def silent_server():
    """(host, port) of a socket that completes TCP handshakes (the kernel's backlog) and never sends a byte."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()


def outcome_of(call) -> Exception | None:
    """The exception CALL raised, or None when it still waits after HANG seconds (or returned)."""
    result: dict[str, Exception] = {}

    def target():
        try:
            call()
        except Exception as exc:  # the outcome under test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG)
    return result.get("error")


@pytest.mark.parametrize("entry", ["advisory_lock", "connect"])
def test_a_warehouse_that_never_answers_fails_the_connection_with_a_timeout(silent_server, monkeypatch, entry):
    host, port = silent_server
    monkeypatch.setattr(warehouse, "CONNECT_TIMEOUT", 2)  # libpq's smallest
    env = {"PGHOST": host, "PGPORT": str(port), "PGUSER": "fleet", "PGPASSWORD": "unused", "PGDATABASE": "warehouse"}
    if entry == "advisory_lock":

        def call():
            with warehouse.advisory_lock(warehouse.POOLS_LOCK_KEY, env):
                pass
    else:
        for key, value in env.items():  # the marts step's connection reads PG* from the environment
            monkeypatch.setenv(key, value)

        def call():
            warehouse.connect().close()

    error = outcome_of(call)
    assert error is not None, f"the connection still waited after {HANG} s"
    assert "timeout expired" in str(error), error
