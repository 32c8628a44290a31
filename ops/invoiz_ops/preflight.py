#!/usr/bin/env python3
"""Checks that Meltano runs as the first task of the jobs in meltano.yml, so that a missing piece is one line saying
what to do instead of a traceback from a plugin. Standard library only: Meltano runs it with the first python3 on PATH.

    preflight.py database                  PostgreSQL is configured (PGHOST) and accepts connections on its port
    preflight.py full-refresh database     ... and `meltano run` was given --full-refresh (the backfill job)

A Meltano job cannot carry --full-refresh itself, and without it the backfill job would be an incremental run that
sends nothing new. Meltano runs this as its child process, so the flag is read from the command line of the `meltano`
process above (or MELTANO_RUN_FULL_REFRESH, the flag's environment variable).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

TRUE = {"1", "true", "t", "yes", "y", "on"}
EXIT_FAILED = 2
NO_FULL_REFRESH = (
    "The backfill job resends all history only with --full-refresh: run `meltano run --full-refresh backfill` "
    "(or `make backfill`). Nothing was run. For new and changed records only: `meltano run sync`."
)
SET_PG = "set PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE in .env or your environment"
NO_DATABASE = (
    f"No PostgreSQL to load into: PGHOST is not set. Either {SET_PG}, or use `make sync` / `make backfill`, "
    "which start the embedded PostgreSQL of this checkout. Nothing was run."
)


def _argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except OSError:
        pass
    try:  # no /proc (macOS): ps
        out = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False)
        return out.stdout.split()
    except OSError:
        return []


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        out = subprocess.run(["ps", "-o", "ppid=", "-p", str(pid)], capture_output=True, text=True, check=False)
        return int(out.stdout.strip())
    except (OSError, ValueError):
        return None


def full_refresh_requested() -> bool:
    if os.environ.get("MELTANO_RUN_FULL_REFRESH", "").strip().lower() in TRUE:
        return True
    pid: int | None = os.getppid()
    for _ in range(3):  # the meltano process that runs the job: directly above us, or a wrapper or two higher
        if not pid or pid <= 1:
            break
        argv = _argv(pid)
        if any(os.path.basename(part).startswith("meltano") for part in argv[:2]) and "run" in argv:
            return "--full-refresh" in argv
        pid = _parent(pid)
    return False


def database_problem() -> str | None:
    """None when something accepts connections where PGHOST/PGPORT point, else the one-line message."""
    host = os.environ.get("PGHOST", "").strip()
    port = os.environ.get("PGPORT", "").strip() or "5432"
    if not host:
        return NO_DATABASE
    if not port.isdigit():
        return f"PGPORT must be a port number (got {port!r}): {SET_PG}. Nothing was run."
    for one_host in host.split(","):  # libpq allows a list; one that answers is enough
        one_host = one_host.strip()
        try:
            if one_host.startswith("/"):  # a socket directory
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(5)
                    sock.connect(os.path.join(one_host, f".s.PGSQL.{port}"))
            else:
                socket.create_connection((one_host, int(port)), timeout=5).close()
            return None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
    return (
        f"Cannot reach PostgreSQL at PGHOST={host} PGPORT={port} ({reason}): start it, or {SET_PG} "
        "(`make sync` / `make backfill` use the embedded one). Nothing was run."
    )


def main(argv: list[str] | None = None) -> int:
    checks = argv if argv is not None else sys.argv[1:]
    unknown = set(checks) - {"full-refresh", "database"}
    if unknown or not checks:
        print(__doc__, file=sys.stderr)
        return EXIT_FAILED
    if "full-refresh" in checks and not full_refresh_requested():
        print(NO_FULL_REFRESH, file=sys.stderr)
        return EXIT_FAILED
    if "database" in checks and (problem := database_problem()):
        print(problem, file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
