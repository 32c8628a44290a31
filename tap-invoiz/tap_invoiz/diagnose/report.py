"""The findings of the diagnosis and the Markdown report made of them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tap_invoiz.diagnose.contract import FAIL, OK, SECTIONS, SKIP, WARN
from tap_invoiz.diagnose.forms import plural
from tap_invoiz.diagnose.probes import Probe


@dataclass
class Finding:
    key: str
    section: str
    verdict: str
    title: str
    text: str

    def line(self) -> str:
        return f"- {self.verdict} **{self.title}** — {self.text}"


@dataclass
class Report:
    findings: list[Finding]
    tables: dict[str, list[str]]
    probes: list[Probe]
    api: str
    started: str
    fatal: str | None = None

    @property
    def exit_code(self) -> int:
        if self.fatal is not None:
            return 2
        return 1 if any(f.verdict == FAIL for f in self.findings) else 0

    def finding(self, key: str) -> Finding:
        for item in self.findings:
            if item.key == key:
                return item
        raise KeyError(key)

    def verdicts(self) -> dict[str, str]:
        return {f.key: f.verdict for f in self.findings}

    def render(self) -> str:
        from tap_invoiz import __version__

        counts = Counter(f.verdict for f in self.findings)
        out = [
            "# invoiz diagnosis for tap-invoiz",
            "",
            f"tap-invoiz {__version__} · API `{self.api}` · {self.started} · "
            f"{plural(len(self.probes), 'request')} (read-only)",
            "",
        ]
        if self.fatal is not None:
            out += [f"**{FAIL} Cannot connect or authenticate** — {self.fatal}", "", "Exit status 2.", ""]
            return "\n".join(out)
        out += [
            f"**Verdict: {OK} {counts[OK]} as expected · {WARN} {counts[WARN]} differ but handled · "
            f"{FAIL} {counts[FAIL]} block a correct sync · {SKIP} {counts[SKIP]} not checked** "
            f"(exit status {self.exit_code})",
            "",
        ]
        notable = [f for f in self.findings if f.verdict in (FAIL, WARN)]
        if notable:
            out += ["## What differs from the contract", ""]
            out += [f.line() for f in sorted(notable, key=lambda f: f.verdict != FAIL)]
            out.append("")
        sections = [s for s in SECTIONS if s in {f.section for f in self.findings} or s in self.tables]
        for section in sections:
            out += [f"## {section}", ""]
            lines = [f.line() for f in self.findings if f.section == section]
            out += [*lines, ""] if lines else []
            for line in self.tables.get(section, []):
                out.append(line)
            if self.tables.get(section):
                out.append("")
        out += self._requests_table()
        out += [
            "",
            "The report holds field names, JSON types, forms, counts and HTTP statuses only — no credential, token, "
            "name, e-mail, address, amount, invoice number or id.",
            "",
        ]
        return "\n".join(out)

    def _requests_table(self) -> list[str]:
        out = ["## Requests", "", "| # | request | HTTP | ms |", "|---|---|---|---|"]
        for number, probe in enumerate(self.probes, start=1):
            status = probe.status if probe.status is not None else probe.error
            retried = f" (after {plural(probe.retries, 'retry', 'retries')})" if probe.retries else ""
            out.append(f"| {number} | `{probe.label}` | {status}{retried} | {probe.ms:.0f} |")
        return out
