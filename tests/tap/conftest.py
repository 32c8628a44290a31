"""Fixtures of the tap tests. The sandbox fixtures come from invoiz_sandbox.pytest_plugin (tests/conftest.py)."""

from __future__ import annotations

import logging

import pytest

import tap_invoiz.retry


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    """Exponential backoff starts at 10 ms instead of 1 s in tests (Retry-After is still honoured)."""
    monkeypatch.setattr(tap_invoiz.retry, "BACKOFF_BASE", 0.01)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def tap_log():
    """Messages the tap logs (its loggers do not propagate to pytest's caplog)."""
    handler = _Collect()
    logger = logging.getLogger("tap-invoiz")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)
