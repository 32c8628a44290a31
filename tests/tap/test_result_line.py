"""Each sync ends with the account's result as one JSON line on stderr (tap_invoiz.results), also when it fails."""

from __future__ import annotations

import json
from collections import Counter

from tap_helpers import run_cli, run_tap, sandbox_config

from tap_invoiz import results


def result_lines(stderr: str) -> list[dict]:
    lines = [line for line in stderr.splitlines() if line.startswith(results.MARKER)]
    return [json.loads(line.removeprefix(results.MARKER)) for line in lines]


def test_a_sync_reports_what_it_emitted_as_one_json_line(invoiz_sandbox, capsys):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    run = run_tap(cfg)
    (result,) = result_lines(capsys.readouterr().err)
    emitted = Counter(m["stream"] for m in run.messages if m["type"] == "RECORD" and m["stream"] != "sync_status")
    assert result["account"] == "test" and result["status"] == "ok" and result["error"] is None
    assert result["streams"] == dict(emitted)
    assert result["records"] == result["new"] == sum(emitted.values()) > 0
    assert result["changed"] == result["deleted"] == result["retries"] == 0
    assert result["requests"] == sum(sb.requests.values())  # the token request included
    assert result["seconds"] >= 0

    # the next run: one change
    sb.pay(next(i for i in sb.invoice_ids() if sb.invoice_row(i)["state"] == "locked"))
    run_tap(cfg, run.state)
    (result,) = result_lines(capsys.readouterr().err)
    assert (result["records"], result["new"], result["changed"]) == (1, 0, 1)
    assert result["streams"]["invoices"] == 1


def test_a_failed_sync_reports_its_first_error_line_and_keeps_the_message_last(invoiz_sandbox, tmp_path):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    first = run_tap(cfg)
    sb.set_credentials(installation_id="another-installation")
    run = run_cli({**cfg, "installation_id": "another-installation"}, first.state, tmp_path)
    assert run.returncode != 0
    (result,) = result_lines(run.stderr)
    assert result["account"] == "test" and result["status"] == "failed" and result["records"] == 0
    assert result["error"].startswith("setting installation_id reaches another invoiz installation")
    assert "\n" not in result["error"] and "another-installation" not in json.dumps(result)
    # `meltano config test` shows only the last line: it is still the message naming the settings
    assert run.stderr.strip().splitlines()[-1].startswith("setting installation_id reaches another")


def test_result_lines_are_read_back_from_a_meltano_log():
    ok = results.account_result("acme", [], 1, 0.25)
    failed = results.not_started("bolt-gmbh", "no credentials (TAP_INVOIZ__BOLT_GMBH_API_KEY)\nsecond line")
    console = (
        f"2026-11-01T10:00:00.000000Z [info     ] {results.result_line(ok)} cmd_type=elb consumer=False "
        "name=tap-invoiz-fleet producer=True stdio=stderr string_id=tap-invoiz-fleet"
    )
    structured = json.dumps({"event": results.result_line(failed), "level": "info", "stdio": "stderr"})
    log = "\n".join(
        [
            "some line mentioning " + results.MARKER + "without JSON",
            console,
            structured,
            results.result_line({**ok, "records": 7}),  # a later line for the same account wins
        ]
    )
    found = results.read_results(log)
    assert found["acme"] == {**ok, "records": 7}
    assert found["bolt-gmbh"]["status"] == "failed"
    assert found["bolt-gmbh"]["error"] == "no credentials (TAP_INVOIZ__BOLT_GMBH_API_KEY)"
    assert set(found) == {"acme", "bolt-gmbh"}


def test_first_line_of_an_error():
    assert results.first_line(ValueError("bad\nmore")) == "ValueError: bad"
    assert results.first_line(SystemExit("setting api_key is wrong")) == "setting api_key is wrong"
    assert results.first_line(SystemExit(2)) == "exit 2"
    assert results.first_line(RuntimeError()) == "RuntimeError"
    assert len(results.first_line("x" * 900)) == 500
