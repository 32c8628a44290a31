"""Diagnosis: the forms of dates, ids, numbers and amounts, the not-found answer, other endpoints, the latency."""

from __future__ import annotations

import decimal
import statistics
from collections import Counter

from tap_invoiz.diagnose.checks import Checks
from tap_invoiz.diagnose.contract import CALENDAR_DATES, DATE_TIMES, FAIL, MONEY, OK, SKIP, WARN
from tap_invoiz.diagnose.forms import counts_text, date_form, json_type, plural, values_at
from tap_invoiz.diagnose.probes import Probe


def _date_forms(objects: list[dict], paths: tuple[str, ...]) -> tuple[Counter, str]:
    """How often each form of date (``date_form``) occurs at these paths, and that census as text."""
    forms: Counter = Counter()
    for path in paths:
        for value in values_at(objects, path):
            if value is not None:
                forms[date_form(value)] += 1
    return forms, counts_text(forms)


def _unreadable(forms: Counter) -> bool:
    return bool(forms.get("unreadable")) or any(form.startswith(("JSON", "empty")) for form in forms)


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
        say = self.verdict("formats.dates", section, "Calendar dates")
        forms, shown = _date_forms(objects, CALENDAR_DATES)
        expected = "UTC midnight (…T00:00:00Z)"
        if not forms:
            say(SKIP, "no dates seen")
        elif set(forms) == {expected}:
            say(OK, f"{shown} — the form the contract's sources send")
        elif _unreadable(forms):
            say(
                FAIL,
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
            say(WARN, f"{shown}. Handled: {handled}")

    def _format_datetimes(self, objects: list[dict]) -> None:
        """Date-times (lockedAt, sentAt, history dates): ISO 8601 with a zone?"""
        section = "Formats"
        say = self.verdict("formats.datetimes", section, "Date-times")
        forms, shown = _date_forms(objects, DATE_TIMES)
        zoned = {"UTC midnight (…T00:00:00Z)", "Berlin midnight as UTC instant (…T22/23:00:00Z)", "date-time with zone"}
        if not forms:
            say(SKIP, "no `lockedAt`, `sentAt` or `history[].date` seen")
        elif set(forms) <= zoned:
            say(OK, "ISO 8601 with a zone (`lockedAt`, `sentAt`, `history[].date`)")
        elif _unreadable(forms):
            say(FAIL, f"{shown}: unreadable date-times load as null. Send us this report")
        else:
            say(WARN, f"{shown}. Handled: kept as sent (a plain date becomes midnight UTC)")

    def _format_ids(self, rows: list[dict], contacts: list[dict]) -> None:
        """Invoice id, customerId and contact id: integers?"""
        section = "Formats"
        say = self.verdict("formats.ids", section, "Ids")
        id_types: Counter = Counter()
        for objs, path in ((rows, "id"), (rows, "customerId"), (contacts, "id")):
            for value in values_at(objs, path):
                id_types[
                    json_type(value)
                    if not (isinstance(value, str) and value.strip().lstrip("-").isdigit())
                    else "numeric string"
                ] += 1
        shown = counts_text(id_types)
        if not id_types:
            say(SKIP, "no rows")
        elif set(id_types) == {"integer"}:
            say(OK, "invoice `id`, `customerId` and contact `id` are integers")
        elif set(id_types) <= {"integer", "numeric string"}:
            say(WARN, f"{shown}. Handled: read as integers")
        else:
            say(FAIL, f"{shown}: rows without an integer id stop the tap. Send us this report")

    def _format_numbers(self, rows: list[dict], contacts: list[dict]) -> None:
        """Invoice and customer numbers: strings (leading zeros kept)?"""
        section = "Formats"
        say = self.verdict("formats.numbers", section, "Invoice and customer numbers")
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
        shown = counts_text(kinds)
        if not kinds:
            say(SKIP, "no rows")
        elif set(kinds) <= {"string"}:
            say(OK, f"strings ({zeros} with leading zeros, kept)")
        elif set(kinds) <= {"string", "integer", "null"}:
            say(WARN, f"{shown}. Handled: numbers become text (raw value in `extra_fields`), null stays null")
        else:
            say(FAIL, f"{shown}: such numbers load as null. Send us this report")

    def _format_draft_numbers(self, rows: list[dict], draft_rows: list[dict]) -> None:
        """The number of draft invoices: null?"""
        section = "Formats"
        say = self.verdict("formats.draft_number", section, "Draft numbers")
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
        shown = counts_text(forms)
        if not drafts:
            say(SKIP, "no draft invoice in the listing")
        elif set(forms) == {"null"}:
            say(OK, f"`null` on {plural(len(drafts), 'draft')}")
        elif set(forms) <= {"null", "empty string"}:
            say(WARN, f"{shown}. Handled: an empty number is loaded as null")
        else:
            say(WARN, f"{shown}: drafts carry a number; loaded as it is")

    def _format_money(self, rows: list[dict]) -> None:
        """Amounts: JSON numbers?"""
        section = "Formats"
        say = self.verdict("formats.money", section, "Amounts")
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
        shown = counts_text(money)
        if not money:
            say(SKIP, "no rows")
        elif set(money) <= {"number", "integer"}:
            say(OK, "`totalNet`, `totalGross`, `outstandingAmount`, `cashDiscountTotal` are JSON numbers")
        elif set(money) <= {"number", "integer", "decimal string"}:
            say(WARN, f"{shown}. Handled: decimal strings are converted exactly (raw value kept in `extra_fields`)")
        else:
            say(FAIL, f"{shown}: such amounts load as null and customer values would be wrong. Send us this report")

    def _format_not_found(self, unknown: Probe) -> None:
        """How invoiz answers for an id it does not have (the form that marks rows deleted)."""
        section = "Formats"
        say = self.verdict("formats.not_found", section, "Unknown id")
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
            say(OK, f"HTTP 404, {shape}: the tap marks such rows deleted")
        elif unknown.status == 400 and not_found:
            say(WARN, f"HTTP 400 with `NOT_FOUND`, {shape}. Handled: the tap treats 404 and 400 + NOT_FOUND alike")
        else:
            status = unknown.status if unknown.status is not None else unknown.error
            say(
                FAIL,
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
        say = self.verdict("latency", "Latency", "Latency")
        probes = [p for p in self._probes() if p.status is not None]
        if not probes:
            return
        times = [p.ms for p in probes]
        median, worst = statistics.median(times), max(times)
        slowest = max(probes, key=lambda p: p.ms).label
        text = f"median {median:.0f} ms, max {worst:.0f} ms (`{slowest}`) over {plural(len(probes), 'request')}"
        timeout = float(self.config.get("request_timeout") or 60) * 1000
        if worst > timeout / 2:
            say(
                WARN,
                text + f": close to request_timeout ({timeout / 1000:.0f} s). Handled by retries; consider a "
                "larger request_timeout",
            )
        else:
            say(OK, text)
