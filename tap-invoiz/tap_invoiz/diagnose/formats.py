"""Diagnosis: the forms of dates, ids, numbers and amounts, the not-found answer, other endpoints, the latency."""

from __future__ import annotations

import decimal
import statistics
from collections import Counter

from tap_invoiz.diagnose.checks import Checks
from tap_invoiz.diagnose.contract import CALENDAR_DATES, DATE_TIMES, FAIL, MONEY, OK, SKIP, WARN
from tap_invoiz.diagnose.forms import date_form, json_type, plural, values_at
from tap_invoiz.diagnose.probes import Probe


class FormatChecks(Checks):
    """The format, other-endpoint and latency sections of the diagnosis (a part of :class:`~tap_invoiz.diagnose.run.Diagnosis`)."""

    def _formats(
        self, rows: list[dict], invoice: dict | None, contacts: list[dict], unknown: Probe, draft_rows: list[dict]
    ) -> None:
        objects = [*rows, *([invoice] if invoice else [])]
        self._format_dates(objects)
        self._format_datetimes(objects)
        self._format_ids(rows, contacts)
        self._format_numbers(rows, contacts)
        self._format_draft_numbers(rows, draft_rows)
        self._format_money(rows)
        self._format_not_found(unknown)

    def _format_dates(self, objects: list[dict]) -> None:
        """Calendar dates (invoice date, due date, ...): the form they come in."""
        section = "Formats"
        forms: Counter = Counter()
        for path in CALENDAR_DATES:
            for value in values_at(objects, path):
                if value is not None:
                    forms[date_form(value)] += 1
        shown = ", ".join(f"{form} {number}" for form, number in forms.most_common())
        expected = "UTC midnight (…T00:00:00Z)"
        if not forms:
            self.add("formats.dates", section, SKIP, "Calendar dates", "no dates seen")
        elif set(forms) == {expected}:
            self.add("formats.dates", section, OK, "Calendar dates", f"{shown} — the form the contract's sources send")
        elif forms.get("unreadable") or any(form.startswith(("JSON", "empty")) for form in forms):
            self.add(
                "formats.dates",
                section,
                FAIL,
                "Calendar dates",
                f"{shown}: unreadable dates load as null (raw value in `extra_fields`), so invoice dates and "
                "start_date would be wrong. Send us this report (the form only is in it)",
            )
        else:
            how = {
                "YYYY-MM-DD": "read as that calendar day",
                "Berlin midnight as UTC instant (…T22/23:00:00Z)": "converted to the Europe/Berlin date (the next "
                "UTC day)",
                "date-time with zone": "converted to the Europe/Berlin date",
                "date-time without zone": "its own date is taken",
            }
            handled = "; ".join(
                f"{how[form]} ({form})" if len(forms) > 1 else how[form] for form in forms if form in how
            )
            self.add("formats.dates", section, WARN, "Calendar dates", f"{shown}. Handled: {handled}")

    def _format_datetimes(self, objects: list[dict]) -> None:
        """Date-times (lockedAt, sentAt, history dates): ISO 8601 with a zone?"""
        section = "Formats"
        forms: Counter = Counter()
        for path in DATE_TIMES:
            for value in values_at(objects, path):
                if value is not None:
                    forms[date_form(value)] += 1
        shown = ", ".join(f"{form} {number}" for form, number in forms.most_common())
        zoned = {"UTC midnight (…T00:00:00Z)", "Berlin midnight as UTC instant (…T22/23:00:00Z)", "date-time with zone"}
        if not forms:
            self.add(
                "formats.datetimes", section, SKIP, "Date-times", "no `lockedAt`, `sentAt` or `history[].date` seen"
            )
        elif set(forms) <= zoned:
            self.add(
                "formats.datetimes",
                section,
                OK,
                "Date-times",
                "ISO 8601 with a zone (`lockedAt`, `sentAt`, `history[].date`)",
            )
        elif forms.get("unreadable") or any(form.startswith(("JSON", "empty")) for form in forms):
            self.add(
                "formats.datetimes",
                section,
                FAIL,
                "Date-times",
                f"{shown}: unreadable date-times load as null. Send us this report",
            )
        else:
            self.add(
                "formats.datetimes",
                section,
                WARN,
                "Date-times",
                f"{shown}. Handled: kept as sent (a plain date becomes midnight UTC)",
            )

    def _format_ids(self, rows: list[dict], contacts: list[dict]) -> None:
        """Invoice id, customerId and contact id: integers?"""
        section = "Formats"
        id_types: Counter = Counter()
        for objs, path in ((rows, "id"), (rows, "customerId"), (contacts, "id")):
            for value in values_at(objs, path):
                id_types[
                    json_type(value)
                    if not (isinstance(value, str) and value.strip().lstrip("-").isdigit())
                    else "numeric string"
                ] += 1
        shown = ", ".join(f"{kind} {number}" for kind, number in id_types.most_common())
        if not id_types:
            self.add("formats.ids", section, SKIP, "Ids", "no rows")
        elif set(id_types) == {"integer"}:
            self.add("formats.ids", section, OK, "Ids", "invoice `id`, `customerId` and contact `id` are integers")
        elif set(id_types) <= {"integer", "numeric string"}:
            self.add("formats.ids", section, WARN, "Ids", f"{shown}. Handled: read as integers")
        else:
            self.add(
                "formats.ids",
                section,
                FAIL,
                "Ids",
                f"{shown}: rows without an integer id stop the tap. Send us this report",
            )

    def _format_numbers(self, rows: list[dict], contacts: list[dict]) -> None:
        """Invoice and customer numbers: strings (leading zeros kept)?"""
        section = "Formats"
        kinds: Counter = Counter()
        zeros = 0
        for objs in (rows, contacts):
            for obj in objs:
                if obj.get("state") == "draft":
                    continue
                value = obj.get("number")
                kinds[json_type(value)] += 1
                if isinstance(value, str) and len(value) > 1 and value.startswith("0"):
                    zeros += 1
        shown = ", ".join(f"{kind} {number}" for kind, number in kinds.most_common())
        if not kinds:
            self.add("formats.numbers", section, SKIP, "Invoice and customer numbers", "no rows")
        elif set(kinds) <= {"string"}:
            self.add(
                "formats.numbers",
                section,
                OK,
                "Invoice and customer numbers",
                f"strings ({zeros} with leading zeros, kept)",
            )
        elif set(kinds) <= {"string", "integer", "null"}:
            self.add(
                "formats.numbers",
                section,
                WARN,
                "Invoice and customer numbers",
                f"{shown}. Handled: numbers become text (raw value in `extra_fields`), null stays null",
            )
        else:
            self.add(
                "formats.numbers",
                section,
                FAIL,
                "Invoice and customer numbers",
                f"{shown}: such numbers load as null. Send us this report",
            )

    def _format_draft_numbers(self, rows: list[dict], draft_rows: list[dict]) -> None:
        """The number of draft invoices: null?"""
        section = "Formats"
        drafts = [row for row in rows if row.get("state") == "draft"]
        seen = {self._row_id(row) for row in drafts}
        drafts += [row for row in draft_rows if row.get("state") == "draft" and self._row_id(row) not in seen]
        forms = Counter(
            "null"
            if row.get("number") is None
            else "empty string"
            if row.get("number") == ""
            else json_type(row.get("number"))
            for row in drafts
        )
        shown = ", ".join(f"{form} {number}" for form, number in forms.most_common())
        if not drafts:
            self.add("formats.draft_number", section, SKIP, "Draft numbers", "no draft invoice in the listing")
        elif set(forms) == {"null"}:
            self.add("formats.draft_number", section, OK, "Draft numbers", f"`null` on {plural(len(drafts), 'draft')}")
        elif set(forms) <= {"null", "empty string"}:
            self.add(
                "formats.draft_number",
                section,
                WARN,
                "Draft numbers",
                f"{shown}. Handled: an empty number is loaded as null",
            )
        else:
            self.add(
                "formats.draft_number",
                section,
                WARN,
                "Draft numbers",
                f"{shown}: drafts carry a number; loaded as it is",
            )

    def _format_money(self, rows: list[dict]) -> None:
        """Amounts: JSON numbers?"""
        section = "Formats"
        money: Counter = Counter()
        for path in MONEY:
            for value in values_at(rows, path):
                if value is not None:
                    kind = json_type(value)
                    if kind == "string":
                        try:
                            decimal.Decimal(value.strip())
                            kind = "decimal string"
                        except decimal.InvalidOperation:
                            kind = "other string"
                    money[kind] += 1
        shown = ", ".join(f"{kind} {number}" for kind, number in money.most_common())
        if not money:
            self.add("formats.money", section, SKIP, "Amounts", "no rows")
        elif set(money) <= {"number", "integer"}:
            self.add(
                "formats.money",
                section,
                OK,
                "Amounts",
                "`totalNet`, `totalGross`, `outstandingAmount`, `cashDiscountTotal` are JSON numbers",
            )
        elif set(money) <= {"number", "integer", "decimal string"}:
            self.add(
                "formats.money",
                section,
                WARN,
                "Amounts",
                f"{shown}. Handled: decimal strings are converted exactly (raw value kept in `extra_fields`)",
            )
        else:
            self.add(
                "formats.money",
                section,
                FAIL,
                "Amounts",
                f"{shown}: such amounts load as null and customer values would be wrong. Send us this report",
            )

    def _format_not_found(self, unknown: Probe) -> None:
        """How invoiz answers for an id it does not have (the form that marks rows deleted)."""
        section = "Formats"
        body = unknown.body if isinstance(unknown.body, dict) else None
        code = None
        if body and isinstance(body.get("meta"), dict):
            ids = body["meta"].get("id")
            if isinstance(ids, list) and ids and isinstance(ids[0], dict):
                code = ids[0].get("code")
        shape = (
            f"body `{{name, message, meta.id[0].code: {code}}}`"
            if code
            else "a JSON body"
            if unknown.json_ok
            else "no JSON body"
        )
        not_found = unknown.not_found
        if unknown.status == 404:
            self.add(
                "formats.not_found", section, OK, "Unknown id", f"HTTP 404, {shape}: the tap marks such rows deleted"
            )
        elif unknown.status == 400 and not_found:
            self.add(
                "formats.not_found",
                section,
                WARN,
                "Unknown id",
                f"HTTP 400 with `NOT_FOUND`, {shape}. Handled: the tap treats 404 and 400 + NOT_FOUND alike",
            )
        else:
            status = unknown.status if unknown.status is not None else unknown.error
            self.add(
                "formats.not_found",
                section,
                FAIL,
                "Unknown id",
                f"answered {status} ({shape}): the tap cannot confirm that a row was deleted (the run fails "
                "or deleted rows stay). Send us this report",
            )

    def _pay_conditions(self, probe: Probe) -> None:
        """Not used by the tap, so no verdict: a note that settles the contract's question on its envelope."""
        if probe.ok and isinstance(probe.data, list):
            shape = f"`{{data: [...]}}` ({plural(len(probe.data), 'entry', 'entries')})"
        elif probe.ok and isinstance(probe.body, list):
            shape = "a bare array, not `{data: [...]}`"
        else:
            shape = f"HTTP {probe.status if probe.status is not None else probe.error}"
        self.table("Other endpoints", [f"- `GET setting/payCondition` (not used by the tap): {shape}"])

    def _latency(self) -> None:
        probes = [p for p in self._probes() if p.status is not None]
        if not probes:
            return
        times = [p.ms for p in probes]
        median, worst = statistics.median(times), max(times)
        slowest = max(probes, key=lambda p: p.ms).label
        text = f"median {median:.0f} ms, max {worst:.0f} ms (`{slowest}`) over {plural(len(probes), 'request')}"
        timeout = float(self.config.get("request_timeout") or 60) * 1000
        if worst > timeout / 2:
            self.add(
                "latency",
                "Latency",
                WARN,
                "Latency",
                text + f": close to request_timeout ({timeout / 1000:.0f} s). Handled by retries; consider a "
                "larger request_timeout",
            )
        else:
            self.add("latency", "Latency", OK, "Latency", text)
