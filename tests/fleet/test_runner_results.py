"""The fleet's step reads each account's outcome from the tap's JSON result lines, not from its log prose."""

from __future__ import annotations

from invoiz_ops.fleet import runner
from tap_invoiz import results


def meltano_line(text: str) -> str:
    """A tap's stderr line as `meltano run` prints it (console format)."""
    return (
        f"2026-11-01T10:00:00.000000Z [info     ] {text} cmd_type=elb consumer=False job_name=dev:tap-invoiz-fleet-to-"
        "target-postgres name=tap-invoiz-fleet producer=True run_id=0 stdio=stderr string_id=tap-invoiz-fleet"
    )


def shard_log() -> str:
    acme = {**results.not_started("acme", "x"), "status": "ok", "error": None}
    acme.update(
        streams={"invoices": 3, "contacts": 1}, records=4, new=1, changed=3, requests=5, retries=1, seconds=0.42
    )
    bolt = {**acme, "account": "bolt-gmbh", "records": 2, "new": 2, "changed": 0, "requests": 3, "retries": 0}
    cora = results.not_started("cora", "no credentials (TAP_INVOIZ__CORA_INSTALLATION_ID)")
    lines = [
        "tap-invoiz-fleet | INFO | fleet account 'acme': ok: sync done in 0.4 s: 999 records emitted",  # prose: ignored
        *(meltano_line(results.result_line(r)) for r in (acme, bolt, cora)),
        meltano_line("fleet: 3 accounts in 1.0 s, 1 failed (cora)"),
    ]
    return "\n".join(lines)


def test_outcomes_per_account_come_from_the_result_lines():
    outcomes = runner.parse_accounts(shard_log())
    assert outcomes["acme"] == {
        "ok": True,
        "records": 4,
        "new": 1,
        "changed": 3,
        "deleted": 0,
        "requests": 5,
        "retries": 1,
        "seconds": 0.4,
    }
    assert outcomes["bolt-gmbh"]["ok"] and outcomes["bolt-gmbh"]["records"] == 2
    assert outcomes["cora"] == {
        "ok": False,
        "records": 0,
        "new": 0,
        "changed": 0,
        "deleted": 0,
        "requests": 0,
        "retries": 0,
        "seconds": 0.0,
        "error": "no credentials (TAP_INVOIZ__CORA_INSTALLATION_ID)",
    }


def test_the_runs_summary_adds_up_its_accounts():
    summary = runner.summarise(runner.parse_accounts(shard_log()))
    assert summary == {
        "records": 6,
        "new": 3,
        "changed": 3,
        "deleted": 0,
        "requests": 8,
        "retries": 1,
        "seconds": 0.8,
    }
    assert runner.summarise(runner.parse_accounts("no result line: the marts, or a run that never started")) == {}
