"""The base of the diagnosis' parts: the settings, the prober, the findings and tables collected."""

from __future__ import annotations

import typing as t

from tap_invoiz.diagnose.contract import OK, VERDICTS, WARN
from tap_invoiz.diagnose.forms import name_list, plural, type_list
from tap_invoiz.diagnose.probes import Probe, Prober
from tap_invoiz.diagnose.report import Finding
from tap_invoiz.records import Unconvertible, to_integer

if t.TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable, Iterable, Mapping


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

    def verdict(self, key: str, section: str, title: str) -> Callable[[str, str], None]:
        """The finding of one check, whichever verdict it comes to: ``say = self.verdict(...); say(OK, "text")``."""
        return lambda verdict, text: self.add(key, section, verdict, title, text)

    def table(self, section: str, lines: list[str]) -> None:
        self.tables.setdefault(section, []).extend(lines)

    def unknown_fields(self, key: str, section: str, extra: list[str], handled: str) -> None:
        """The fields of an answer that the contract does not name, and how the tap keeps them."""
        say = self.verdict(key, section, "Fields not in the contract")
        if extra:
            say(WARN, f"{name_list(extra)}. Handled: {handled}")
        else:
            say(OK, "none")

    def _field_table(
        self,
        section: str,
        title: str,
        total: int,
        fields: dict[str, Counter],
        expected: Iterable[str],
        known: Iterable[str],
        schema: set[str],
    ) -> None:
        expected, known = set(expected), set(known)
        lines = [
            f"<details><summary>{title}: fields seen on {plural(total, 'object')} (JSON types, no values)</summary>",
            "",
            "| field | JSON types | on | contract |",
            "|---|---|---|---|",
        ]
        for path in sorted(fields, key=lambda p: (p.split(".")[0].split("[")[0].lower(), p)):
            counter = fields[path]
            top = "." not in path
            if not top:
                note = ""
            elif path in expected:
                note = "expected"
            elif path in known:
                note = "known, optional"
            else:
                note = "**not in the contract**"
            if top and path not in schema:
                note += " → `extra_fields`"
            lines.append(f"| `{path}` | {type_list(counter)} | {sum(counter.values())} | {note} |")
        for name in sorted(expected - set(fields)):
            lines.append(f"| `{name}` | — | 0 | **expected, missing** |")
        lines += ["", "</details>"]
        self.table(section, lines)

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
