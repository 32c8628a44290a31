"""The base of the diagnosis' parts: the settings, the prober, the findings and tables collected."""

from __future__ import annotations

import typing as t

from tap_invoiz.diagnose.contract import VERDICTS
from tap_invoiz.diagnose.probes import Probe, Prober
from tap_invoiz.diagnose.report import Finding
from tap_invoiz.records import Unconvertible, to_integer

if t.TYPE_CHECKING:
    from collections.abc import Mapping


class Checks:
    """What every part of the diagnosis shares: the settings, the prober, and the findings and tables it collects."""

    config: Mapping[str, t.Any]
    prober: Prober

    def __init__(self, config: Mapping[str, t.Any]) -> None:
        self.config = config
        self.prober = Prober(config)
        self.findings: list[Finding] = []
        self.tables: dict[str, list[str]] = {}

    def add(self, key: str, section: str, verdict: str, title: str, text: str) -> None:
        assert verdict in VERDICTS
        self.findings.append(Finding(key, section, verdict, title, text))

    def table(self, section: str, lines: list[str]) -> None:
        self.tables.setdefault(section, []).extend(lines)

    def _probes(self) -> list[Probe]:
        """Token requests first, then the GETs, in the order they were sent."""
        return [*self.prober.session.token_probes, *self.prober.probes]

    @staticmethod
    def _row_id(row: dict) -> int | None:
        try:
            return to_integer(row.get("id"))
        except Unconvertible:
            return None

    def _envelope_ok(self, probe: Probe) -> bool:
        return probe.ok and isinstance(probe.body, dict) and isinstance(probe.data, list)
