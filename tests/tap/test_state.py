"""The compact fingerprint state: round trip, robustness and its size for 100,000 invoices."""

from __future__ import annotations

import json
import random

import pytest
from tap_helpers import run_tap, sandbox_config

from tap_invoiz import fingerprint as fp


def test_round_trip_and_canonical_fingerprints():
    rows = {100001 + i: fp.fingerprint({"id": 100001 + i, "n": i}) for i in range(1000)}
    del rows[100500]
    assert fp.decode(fp.encode(rows)) == rows
    assert fp.decode(fp.encode({})) == {}
    assert fp.decode(None) == {}
    assert fp.fingerprint({"a": 1, "b": [1, 2]}) == fp.fingerprint({"b": [1, 2], "a": 1})
    assert fp.fingerprint({"a": 1}) != fp.fingerprint({"a": 1}, salt="other app_url")
    with pytest.raises(ValueError, match="unknown fingerprint format"):
        fp.decode("fp0:xyz")


def test_unreadable_state_means_a_first_run_not_a_crash(invoiz_sandbox):
    cfg = sandbox_config(invoiz_sandbox)
    state = {"bookmarks": {"invoices": {"accounts": {"test": {"fingerprints": "fp1:not-base64!"}}}}}
    run = run_tap(cfg, state)
    assert run.ids("invoices") == set(invoiz_sandbox.invoice_ids())
    status = {r["stream"]: r for r in run.records("sync_status")}
    assert status["invoices"]["full_refresh"] is True


def test_100k_invoices_fit_in_well_under_one_megabyte():
    rng = random.Random(1)
    ids = [100001 + i for i in range(101000)]
    for gone in rng.sample(ids, 1000):  # deleted drafts leave gaps
        ids.remove(gone)
    blob = fp.encode({i: rng.getrandbits(8 * fp.FP_BYTES) for i in ids})
    assert len(ids) == 100_000
    assert len(blob) < 750_000, len(blob)  # measured: ≈ 670 kB (5 bytes of hash + ~1 byte of id gap per row, base64)


@pytest.mark.slow
@pytest.mark.invoiz_sandbox(invoices=100_000, contacts=20_000, max_page_size=1000)
def test_state_of_a_real_100k_run(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb, page_size=1000)
    run = run_tap(cfg)
    assert len(run.records("invoices")) == 100_000
    state_bytes = len(json.dumps(run.state))
    entry = run.state["bookmarks"]["invoices"]["accounts"]["test"]
    invoices_blob = len(entry["fingerprints"])
    states_blob = len(entry["states"])  # one byte of invoice state per row, for listing by state
    print(
        f"state: {state_bytes} bytes in total, invoices {invoices_blob} bytes of fingerprints and {states_blob} "
        "bytes of states for 100,000 rows"
    )
    assert invoices_blob < 750_000
    assert states_blob < 50_000
    assert state_bytes < 1_000_000
    sb.reset_counters()
    quiet = run_tap(cfg, run.state)  # listed by state: the open states, paid and cancelled by their counts
    assert quiet.records("invoices") == [] and sb.requests["invoice_list"] <= 10
    sb.reset_counters()
    full = run_tap({**cfg, "full_scan_every": 1}, quiet.state)  # every invoice every run, as before
    assert full.records("invoices") == [] and sb.requests["invoice_list"] == 100
