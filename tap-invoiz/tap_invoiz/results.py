"""An account's sync result as data: one line on stderr, a fixed marker and a JSON object, read back by orchestrators.

Every sync of an account (``tap-invoiz``, and each account of ``tap-invoiz-fleet``) ends with one such line, also when
it fails::

    tap-invoiz result {"account": "acme", "status": "ok", "streams": {"invoices": 3, "contacts": 0}, "records": 3,
                       "new": 1, "changed": 2, "deleted": 0, "requests": 4, "retries": 0, "seconds": 0.4, "error": null}

(one line in the log). ``requests`` includes the token request; ``error`` is the first line of what stopped the sync
(never a secret: the tap's error messages name settings, not their values). The line is written straight to stderr,
not through the logger, so that neither the log level nor the log format (Meltano's structured logs) can hide or
change it; the human summary line ("sync done in ...") is logged as before.

Standard library only: the Dagster code location reads these lines (:func:`read_results`) with the tap installed
without its dependencies.
"""

from __future__ import annotations

import json
import sys
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterable

MARKER = "tap-invoiz result "
OK = "ok"
FAILED = "failed"
COUNTS = ("records", "new", "changed", "deleted", "requests", "retries")


class StreamCounts(t.Protocol):
    """What a result needs of a stream's progress (:class:`tap_invoiz.progress.StreamProgress`)."""

    name: str
    new: int
    changed: int
    deleted: int
    requests: int
    retries: int

    @property
    def emitted(self) -> int: ...


def first_line(error: BaseException | str | None) -> str | None:
    """``ExcType: first line of its message`` (SystemExit: its message), at most 500 characters."""
    if error is None:
        return None
    if isinstance(error, SystemExit):
        code = error.code
        text = f"exit {code}" if code is None or isinstance(code, int) else str(code)
    elif isinstance(error, BaseException):
        message = str(error).strip()
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    else:
        text = str(error)
    lines = text.strip().splitlines()
    return (lines[0] if lines else "")[:500]


def account_result(
    account: str,
    progress: Iterable[StreamCounts],
    token_requests: int,
    seconds: float,
    error: BaseException | str | None = None,
) -> dict[str, t.Any]:
    """The result of one account's sync from its streams' counters."""
    progress = list(progress)
    return {
        "account": account,
        "status": FAILED if error is not None else OK,
        "streams": {p.name: p.emitted for p in progress},
        "records": sum(p.emitted for p in progress),
        "new": sum(p.new for p in progress),
        "changed": sum(p.changed for p in progress),
        "deleted": sum(p.deleted for p in progress),
        "requests": sum(p.requests for p in progress) + token_requests,
        "retries": sum(p.retries for p in progress),
        "seconds": round(seconds, 2),
        "error": first_line(error),
    }


def not_started(account: str, error: str) -> dict[str, t.Any]:
    """The result of an account whose sync could not start (e.g. no credentials)."""
    return {
        "account": account,
        "status": FAILED,
        "streams": {},
        **dict.fromkeys(COUNTS, 0),
        "seconds": 0.0,
        "error": first_line(error),
    }


def result_line(result: dict[str, t.Any]) -> str:
    return MARKER + json.dumps(result, separators=(", ", ": "))


def write_result(result: dict[str, t.Any], stream: t.TextIO | None = None) -> None:
    stream = sys.stderr if stream is None else stream
    stream.write(result_line(result) + "\n")
    stream.flush()


def _decode_after_marker(text: str) -> dict | None:
    at = text.find(MARKER)
    if at < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text, at + len(MARKER))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and "account" in value else None


def read_results(log: str) -> dict[str, dict[str, t.Any]]:
    """{account: result} of every result line in a log (the last one per account wins). Finds a line also when the
    line carries a prefix and key-value suffix (Meltano's console log) or is the message of a JSON log line."""
    results: dict[str, dict[str, t.Any]] = {}
    for line in log.splitlines():
        if MARKER not in line:
            continue
        result = _decode_after_marker(line)
        if result is None and line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                messages = (v for v in record.values() if isinstance(v, str) and MARKER in v)
                result = next((r for r in map(_decode_after_marker, messages) if r is not None), None)
        if result is not None:
            results[str(result["account"])] = result
    return results
