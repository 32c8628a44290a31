"""A server started by one command and stopped by another is found by the pid in its pid file and stopped by that pid,
with stronger signals when it lingers (embedded PostgreSQL, the fleet's broker)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from invoiz_ops.server_process import is_alive, pid_file_lines, stop_by_pid

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)


def start_child(code: str) -> subprocess.Popen:
    """A child that is reaped as soon as it ends (like a daemonised server, whose parent is not us): no zombie that
    would still answer signal 0."""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    threading.Thread(target=child.wait, daemon=True).start()
    return child


def test_pid_file_names_the_process_only_while_it_runs(tmp_path):
    child = start_child("import time; print('ready', flush=True); time.sleep(60)")
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(f"{child.pid}\n/data\n5432\n")
    try:
        assert pid_file_lines(pid_file) == [str(child.pid), "/data", "5432"]
        assert is_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert pid_file_lines(pid_file) is None
    assert not is_alive(child.pid)
    assert pid_file_lines(tmp_path / "missing.pid") is None
    (tmp_path / "garbage.pid").write_text("not a pid\n")
    assert pid_file_lines(tmp_path / "garbage.pid") is None


def test_a_server_that_ignores_sigterm_gets_the_next_signal_after_its_wait():
    child = start_child(IGNORES_SIGTERM)
    started = time.monotonic()
    stop_by_pid(child.pid, [(0.5, signal.SIGKILL)])
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert time.monotonic() - started >= 0.5  # it was given its time before the stronger signal


def test_a_server_that_ends_on_sigterm_is_not_signalled_again():
    child = start_child("import time; print('ready', flush=True); time.sleep(60)")
    started = time.monotonic()
    stop_by_pid(child.pid, [(10.0, signal.SIGKILL)])
    assert time.monotonic() - started < 5  # returned once it had ended, without waiting out the 10 s
    assert child.wait(timeout=10) == -signal.SIGTERM
