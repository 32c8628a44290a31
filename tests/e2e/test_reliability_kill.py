"""kill -9 of the tap or of the target process (not of `meltano run`) in the middle of an incremental load, then a
normal run: the tables equal the source (docs/RELIABILITY.md). The kill lands while the tap is paging through the invoice list
and the target holds records it has not committed yet."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from e2e_helpers import (  # noqa: F401 (own_meltano_dirs: autouse fixture)
    EL,
    assert_raw_tables_equal_source,
    assert_state_not_ahead_of_tables,
    deleted_ids,
    make_changes,
    meltano_state,
    output,
    own_meltano_dirs,
)

from invoiz_ops.pipeline import PROJECT_ROOT, meltano_command

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _session_processes(session_id: int) -> dict[int, list[str]]:
    """pid -> argv of every process in the session that `meltano run` leads (the plugins Meltano started)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == session_id:  # field 6 of /proc/PID/stat: session id
            found[int(entry.name)] = argv
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux) to find the plugin process")
@pytest.mark.parametrize("victim", ["tap-invoiz", "target-postgres"])
def test_kill_9_of_a_plugin_mid_load_then_a_normal_run_equals_the_source(pipeline, invoiz_sandbox, tmp_path, victim):
    sb = invoiz_sandbox
    pipeline.run(*EL)
    changes = make_changes(sb)
    sb.set_latency(100)  # slow pages, so the kill lands in the middle of the scan
    pipeline.extra_env["TAP_INVOIZ_PAGE_SIZE"] = "5"
    sb.reset_counters()
    log_path = tmp_path / "killed-run.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            meltano_command("run", *EL),
            cwd=PROJECT_ROOT,
            env=pipeline.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and process.poll() is None and time.monotonic() < deadline:
            if sb.requests["invoice_list"] >= 3:
                for pid, argv in _session_processes(process.pid).items():
                    if any(arg.endswith(f"/bin/{victim}") for arg in argv):
                        os.kill(pid, signal.SIGKILL)
                        killed = pid
                        break
            time.sleep(0.02)
        if killed is None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        returncode = process.wait(timeout=120)
    killed_log = log_path.read_text()
    assert killed is not None, f"{victim} was never seen running:\n{killed_log[-2000:]}"
    assert returncode != 0, "meltano run reported success although a plugin was killed"
    assert ("Extractor failed" if victim == "tap-invoiz" else "Loader failed") in killed_log, killed_log[-2000:]
    # whatever the killed run left behind, the state claims no more than the tables hold
    assert_state_not_ahead_of_tables(pipeline, sb, meltano_state(pipeline))

    sb.set_latency(0)
    result = pipeline.run(*EL, check=False)
    if result.returncode != 0 and "already running" in output(result).lower():
        result = pipeline.run("--force", *EL)  # a stale running job, as after a crash of meltano itself
    assert result.returncode == 0, output(result)[-3000:]
    assert_raw_tables_equal_source(pipeline, sb)
    assert deleted_ids(pipeline, "invoices") == {changes["deleted_draft"]}
    assert pipeline.scalar("select status from raw_invoiz.invoices where id = %s", (changes["paid"],)) == "paid"
