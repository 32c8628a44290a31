"""pytest plugin: ``pytest_plugins = ["invoiz_sandbox.pytest_plugin"]``.

Fixtures:
* ``invoiz_sandbox`` – a running :class:`invoiz_sandbox.Sandbox` (function scope, seed 42, 60 invoices,
  fixed clock 2026-11-01).  Override the arguments with ``@pytest.mark.invoiz_sandbox(invoices=500, variants=[...])``.
* ``invoiz_sandbox_factory`` – ``factory(**kwargs)`` starts further sandboxes, all stopped at teardown.
"""

from __future__ import annotations

import pytest

from .server import Sandbox

DEFAULTS = {"seed": 42, "invoices": 60, "today": "2026-11-01"}


def pytest_configure(config):
    config.addinivalue_line("markers", "invoiz_sandbox(**kwargs): arguments for the invoiz_sandbox fixture")


@pytest.fixture
def invoiz_sandbox_factory():
    started = []

    def factory(**kwargs):
        sb = Sandbox(**{**DEFAULTS, **kwargs}).start()
        started.append(sb)
        return sb

    yield factory
    for sb in started:
        sb.stop()


@pytest.fixture
def invoiz_sandbox(request, invoiz_sandbox_factory):
    marker = request.node.get_closest_marker("invoiz_sandbox")
    kwargs = dict(marker.kwargs) if marker else {}
    return invoiz_sandbox_factory(**kwargs)
