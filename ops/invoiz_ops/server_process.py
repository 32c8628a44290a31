"""A server process that outlives the command that started it, found again and stopped by the pid in its pid file
(never by name): the embedded PostgreSQL (embedded_db.py) and the fleet's embedded broker (fleet/broker.py)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path


def is_alive(pid: int) -> bool:
    """Whether a process with this id runs and may be signalled by us."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def pid_file_lines(pid_file: Path) -> list[str] | None:
    """The lines of a server's pid file while the process named on its first line is alive; None otherwise."""
    try:
        lines = pid_file.read_text().splitlines()
        pid = int(lines[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    return lines if is_alive(pid) else None


def stop_by_pid(pid: int, escalation: Sequence[tuple[float, signal.Signals]], first=signal.SIGTERM) -> None:
    """Send ``first``; then, for each (seconds, signal), wait that long for the process to end and send the signal
    when it has not. Returns as soon as the process is gone (or after the last signal)."""
    os.kill(pid, first)
    for seconds, next_signal in escalation:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not is_alive(pid):
                return
            time.sleep(0.1)
        os.kill(pid, next_signal)
