"""`tap-invoiz --diagnose`: the read-only first contact with an invoiz account.

The default sandbox follows the contract, so every line is ✅; each sandbox variant (one contract ❓ answered the
other way) produces its own ⚠️ or ❌ line; the exit status is 0 / 1 / 2; and neither the report nor the log at DEBUG
holds a credential, token, name, e-mail, address, amount, invoice number or id.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
from pathlib import Path

import pytest
from tap_helpers import TAP_EXE, sandbox_config

from invoiz_sandbox.server import VARIANTS
from tap_invoiz.diagnose import FAIL, OK, SKIP, WARN, diagnose, token_form


def run(sb, **overrides):
    return diagnose(sandbox_config(sb, **overrides))


def not_ok(report) -> dict[str, str]:
    return {f.key: f.verdict for f in report.findings if f.verdict != OK}


def cli(config: dict, tmp_path: Path, *args: str, loglevel: str = "INFO") -> subprocess.CompletedProcess:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_INVOIZ_") and k != "LOGLEVEL"}
    env["TAP_INVOIZ_LOGLEVEL"] = loglevel
    return subprocess.run(
        [TAP_EXE, "--diagnose", "--config", str(config_path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


# -- the default sandbox: all ✅ ----------------------------------------------------------------------------------


def test_the_default_sandbox_is_all_as_expected(invoiz_sandbox):
    report = run(invoiz_sandbox)
    assert not_ok(report) == {}
    assert report.exit_code == 0
    keys = {f.key for f in report.findings}
    assert {
        "auth.token",
        "auth.bad_token",
        "paging.default_limit",
        "paging.max_limit",
        "paging.meta_count",
        "invoice_list.fields",
        "invoice_list.timestamps",
        "invoice_detail.envelope",
        "contacts.email",
        "contacts.country_key",
        "filters.meta_filter",
        "filters.locked",
        "filters.sum",
        "formats.dates",
        "formats.not_found",
    } <= keys
    text = report.render()
    assert "⚠️ 0 differ but handled · ❌ 0 block a correct sync · ➖ 0 not checked" in text
    for section in (
        "## Authentication",
        "## Paging",
        "## Invoice list",
        "## Invoice detail",
        "## Contacts",
        "## Filters",
        "## Formats",
        "## Latency",
        "## Requests",
    ):
        assert section in text


def test_only_read_requests_and_one_token(invoiz_sandbox):
    run(invoiz_sandbox)
    requests = invoiz_sandbox.requests
    assert requests["token"] == 1
    assert requests["invoice_list"] == 11  # first page, without limit, limit=1000, 7 filters, the bad token
    assert requests["invoice_detail"] == 2  # one invoice, one unknown id
    assert requests["customer_list"] == 2 and requests["customer_detail"] == 1
    assert {e["kind"] for e in invoiz_sandbox.request_log} <= {
        "token",
        "invoice_list",
        "invoice_detail",
        "customer_list",
        "customer_detail",
    }


def test_the_readme_table_of_settled_questions_names_every_report_line(invoiz_sandbox):
    """tap-invoiz/README.md maps each report line to the contract question it settles; the two must agree."""
    readme = (Path(__file__).resolve().parents[2] / "tap-invoiz" / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Against the live API: the diagnosis")[1].split("\n## ")[0]
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_<>]+|latency)`", section, flags=re.M))
    keys = {f.key for f in run(invoiz_sandbox).findings}
    keys = {
        "filters.<name>" if k.startswith("filters.") and k not in ("filters.meta_filter", "filters.sum") else k
        for k in keys
    }
    assert documented == keys


# -- one test per sandbox variant -------------------------------------------------------------------------------

VARIANT_LINES = {
    # variant: (report line, verdict, words in it)
    "iso_country": ("contacts.country_key", WARN, "falls back to `isoCountry`"),
    "detail_flat": ("invoice_detail.envelope", WARN, "directly under `data`"),
    "date_only": ("formats.dates", WARN, "YYYY-MM-DD"),
    "berlin_midnight": ("formats.dates", WARN, "Berlin midnight"),
    "updated_at": ("invoice_list.timestamps", WARN, "`createdAt`, `updatedAt` on invoice list rows"),
    "extra_fields": ("invoice_list.unknown", WARN, "`currency`, `customFields`, `isMigrated`"),
    "not_found_400": ("formats.not_found", WARN, "HTTP 400 with `NOT_FOUND`"),
    "draft_number_empty": ("formats.draft_number", WARN, "an empty number is loaded as null"),
    "lean_list": ("invoice_list.fields", WARN, "list rows lack `title`, `lockedAt`"),
    "list_positions": ("invoice_list.detail_fields", WARN, "list rows carry `positions`"),
    "no_customer_email": ("contacts.email", FAIL, "no `email` on contacts"),
    "no_meta_filter": ("filters.meta_filter", WARN, "not sent on the invoice list"),
    "locked_includes_dunned": ("filters.locked", WARN, "the listing has 7 invoices in state `locked`"),
    "filter_ignored": ("filters.paid", WARN, "the filter seems ignored"),
}


def test_every_sandbox_variant_has_its_test():
    assert set(VARIANT_LINES) == set(VARIANTS)


@pytest.mark.parametrize("variant", sorted(VARIANT_LINES))
def test_a_sandbox_variant_gives_its_line(invoiz_sandbox, variant):
    invoiz_sandbox.set_variants([variant])
    report = run(invoiz_sandbox)
    key, verdict, words = VARIANT_LINES[variant]
    finding = report.finding(key)
    assert finding.verdict == verdict, finding.line()
    assert words in finding.text
    assert finding.line() in report.render()
    assert report.exit_code == (1 if verdict == FAIL else 0)
    if verdict == WARN:
        assert "Handled" in finding.text  # says which fallback
    else:
        assert "Send us this report" in finding.text  # says what to do


def test_the_extra_fields_variant_flags_unknown_contact_fields_too(invoiz_sandbox):
    invoiz_sandbox.set_variants(["extra_fields"])
    report = run(invoiz_sandbox)
    assert report.finding("contacts.unknown").verdict == WARN
    assert "`isArchived`, `lastActivity`" in report.finding("contacts.unknown").text


def test_list_rows_with_detail_fields_the_tap_has_columns_for_are_not_unknown(invoiz_sandbox):
    """The diagnosis knows the tap's fields from its field tables: `deliveryDate` (detail only in the contract) on a
    list row is loaded into its column, not kept in `extra_fields`; a name no table knows still is."""
    first = invoiz_sandbox.invoice_ids()[0]
    invoiz_sandbox.set_raw_fields("invoice", first, {"deliveryDate": "2026-10-01T00:00:00.000Z"})
    assert run(invoiz_sandbox).finding("invoice_list.unknown").verdict == OK
    invoiz_sandbox.set_raw_fields("invoice", first, {"deliveryWindow": "morning"})
    unknown = run(invoiz_sandbox).finding("invoice_list.unknown")
    assert unknown.verdict == WARN and "`deliveryWindow`" in unknown.text and "deliveryDate" not in unknown.text


def test_the_filter_variants_break_the_sum_of_the_counts(invoiz_sandbox):
    invoiz_sandbox.set_variants(["locked_includes_dunned"])
    assert run(invoiz_sandbox).finding("filters.sum").verdict == WARN


def test_a_silent_cap_on_limit(invoiz_sandbox):
    invoiz_sandbox.set_max_page_size(25)
    finding = run(invoiz_sandbox).finding("paging.max_limit")
    assert finding.verdict == WARN
    assert "caps `limit` silently at 25" in finding.text


def test_a_large_account_whose_listing_does_not_fit_one_page(invoiz_sandbox_factory):
    sb = invoiz_sandbox_factory(invoices=1200, max_page_size=1000)
    report = run(sb)
    assert not_ok(report) == {}
    assert "`invoice` 1000 rows" in report.finding("paging.max_limit").text


def test_an_http_429_is_reported_as_handled(invoiz_sandbox):
    invoiz_sandbox.fault("rate_limit", scope="invoice_list", times=1, retry_after=0)
    report = run(invoiz_sandbox)
    assert report.finding("auth.rate_limit").verdict == WARN
    assert "HTTP 429" in report.finding("auth.rate_limit").text
    assert report.exit_code == 0


def test_a_jwt_token_shows_its_claims_and_lifetime_never_its_content():
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    token = f"{part({'alg': 'HS256'})}.{part({'sub': 'user-4711', 'iat': 1000, 'exp': 4600})}.c2lnbmF0dXJl"
    form, lifetime = token_form(token)
    assert "JWT" in form and "`exp`" in form and "`sub`" in form
    assert "user-4711" not in form
    assert lifetime == "3,600 s"
    assert token_form("sbx_abcdef")[0] == "an opaque string of 10 characters"


# -- the command line: exit status 0 / 1 / 2 -----------------------------------------------------------------------


def test_the_command_prints_the_report_and_exits_0(invoiz_sandbox, tmp_path):
    proc = cli(sandbox_config(invoiz_sandbox), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("# invoiz diagnosis for tap-invoiz")
    assert "exit status 0" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_output_writes_the_report_to_a_file_and_a_blocking_item_exits_1(invoiz_sandbox, tmp_path):
    invoiz_sandbox.set_variants(["no_customer_email"])
    out = tmp_path / "report.md"
    proc = cli(sandbox_config(invoiz_sandbox), tmp_path, "--output", str(out))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stdout == ""
    text = out.read_text(encoding="utf-8")
    assert "❌ **E-mail**" in text and "(exit status 1)" in text


@pytest.mark.parametrize("setting", ["api_key", "api_key_secret", "installation_id"])
def test_rejected_credentials_exit_2_naming_the_settings(invoiz_sandbox, tmp_path, setting):
    wrong = f"wrong-{setting}-4711"
    proc = cli(sandbox_config(invoiz_sandbox, **{setting: wrong}), tmp_path)
    assert proc.returncode == 2
    assert "check settings api_key, api_key_secret and installation_id" in proc.stdout
    assert "check settings api_key, api_key_secret and installation_id" in proc.stderr
    assert wrong not in proc.stdout + proc.stderr
    assert invoiz_sandbox.requests["invoice_list"] == 0


def test_a_missing_setting_exits_2_naming_it(invoiz_sandbox, tmp_path):
    config = sandbox_config(invoiz_sandbox)
    del config["installation_id"]
    proc = cli(config, tmp_path)
    assert proc.returncode == 2
    assert "'installation_id' is a required property" in proc.stdout
    assert invoiz_sandbox.requests["token"] == 0


def test_an_unreachable_api_exits_2_naming_api_url(invoiz_sandbox, tmp_path):
    config = sandbox_config(invoiz_sandbox, max_retries=0)
    invoiz_sandbox.stop()
    proc = cli(config, tmp_path)
    assert proc.returncode == 2
    assert "check setting api_url" in proc.stdout
    assert "Traceback" not in proc.stderr


# -- nothing secret or personal, in the report or the log at any level ----------------------------------------------

SECRETS = {
    "api_key": "KEY-Qx7-do-not-show",
    "api_key_secret": "SECRET-Vw3-do-not-show",
    "installation_id": "INST-Pz9-do-not-show",
}


def test_nothing_secret_or_personal_in_the_report_or_the_debug_log(invoiz_sandbox, tmp_path):
    sb = invoiz_sandbox
    sb.set_credentials(**SECRETS)
    contact = sb.create_contact(
        kind="person",
        firstName="Quirinella",
        lastName="Zebulonski",
        email="quirinella.zebulonski@example.org",
        street="Zypressenpfad 987",
        zipCode="98765",
        city="Quuxhausen",
    )
    invoice = sb.create_invoice(customer_id=contact, amount=87654.32, title="Geheimauftrag Zebulon", state="paid")
    sb.set_raw_fields("invoice", invoice, {"customFields": {"zzPrivateLabel": "VALUE-Yk2-private"}})
    sb.set_raw_fields("contact", contact, {"notes": "NOTE-Jh5-private"})
    config = {**sandbox_config(sb), **SECRETS}
    out = tmp_path / "report.md"
    proc = cli(config, tmp_path, "--output", str(out), loglevel="DEBUG")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8") + proc.stdout + proc.stderr
    assert "diagnose: GET invoice/{id}" in proc.stderr  # the log was written, at DEBUG
    assert "`customFields`" in text  # the unknown field is named ...
    row = sb.invoice(invoice)
    forbidden = [
        *SECRETS.values(),
        *sb.issued_tokens(),
        "Quirinella",
        "Zebulonski",
        "quirinella.zebulonski@example.org",
        "Zypressenpfad",
        "98765",
        "Quuxhausen",
        "Geheimauftrag",
        "87654",
        "87.654",
        "zzPrivateLabel",
        "VALUE-Yk2",
        "NOTE-Jh5",  # ... its members are not
        row["number"],
        str(invoice),
        str(contact),
    ]
    forbidden += [c["email"].strip() for c in sb.contacts() if c.get("email") and c["email"].strip()]
    forbidden += [str(i) for i in sb.invoice_ids()] + [str(i) for i in sb.contact_ids()]
    leaked = sorted({value for value in forbidden if value and _occurs(value, text)})
    assert leaked == []


def test_in_process_logging_at_debug_holds_no_id(invoiz_sandbox):
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        run(invoiz_sandbox)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    log = "\n".join(records)
    assert "diagnose: GET invoice/{id}" in log
    ids = [str(i) for i in invoiz_sandbox.invoice_ids()] + [str(i) for i in invoiz_sandbox.contact_ids()]
    assert [i for i in ids if _occurs(i, log)] == []
    assert not any(token in log for token in invoiz_sandbox.issued_tokens())


def test_an_endpoint_that_keeps_failing_is_a_blocking_line_not_a_crash(invoiz_sandbox):
    invoiz_sandbox.fault("html_error", scope="invoice_detail", rate=1.0)
    report = run(invoiz_sandbox)
    assert report.finding("invoice_detail.envelope").verdict == FAIL
    assert report.finding("formats.not_found").verdict == FAIL
    assert report.exit_code == 1
    assert "| `GET invoice/{id}` | 502 (after 2 retries) |" in report.render()


def test_verdict_marks_are_the_documented_ones(invoiz_sandbox):
    invoiz_sandbox.set_variants(["no_customer_email", "detail_flat"])
    report = run(invoiz_sandbox)
    assert {f.verdict for f in report.findings} <= {OK, WARN, FAIL, SKIP}
    text = report.render()
    summary = text.split("## What differs from the contract")[1].split("\n## ")[0]
    assert summary.index("❌") < summary.index("⚠️")  # blocking lines first


def _occurs(value: str, text: str) -> bool:
    """``value`` in ``text``; a number only as a whole number (contact id 5011 is not in port 45011 or 1.5011 s)."""
    if value.isdigit():
        return re.search(rf"(?<!\d)(?<!\d\.){re.escape(value)}(?!\d)(?!\.\d)", text) is not None
    return value in text


def _comparable(report: str) -> str:
    """A report without what changes from run to run (time, port, latencies) and with its field tables folded."""
    report = re.sub(r"<details><summary>(.*?)</summary>.*?</details>", r"<details>\1</details>", report, flags=re.S)
    report = re.sub(
        r"<details><summary>(.*?)</summary> … \(a table of every field\) … </details>", r"<details>\1</details>", report
    )
    report = re.sub(r"^tap-invoiz .* · .* UTC · ", "tap-invoiz · ", report, flags=re.M)
    report = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", report)
    report = re.sub(r" \(after \d+ retr(?:y|ies)\)", "", report)  # a busy machine may need a retry
    report = re.sub(r"^- ✅ \*\*Latency\*\* — .*$", "- ✅ **Latency** — …", report, flags=re.M)
    return re.sub(r"\| \d+ \|$", "| ms |", report, flags=re.M)


def test_the_sample_report_in_the_readme_is_what_the_sandbox_gives(invoiz_sandbox):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    sample = readme.split("````markdown\n")[1].split("\n````")[0]
    invoiz_sandbox.set_variants(["detail_flat", "no_meta_filter"])
    assert _comparable(run(invoiz_sandbox).render()).strip() == _comparable(sample).strip()
