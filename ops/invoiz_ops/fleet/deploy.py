"""A fleet of invoiz accounts on Dagster: deploy the shared databases and Dagster instance, run cycles, a demo.

    python -m invoiz_ops.fleet.deploy check      # refuse a fleet whose accounts share an installation or lack credentials
    python -m invoiz_ops.fleet.deploy deploy     # databases, `meltano upgrade database`, dagster.yaml, migrate, pools, schema step
    python -m invoiz_ops.fleet.deploy cycle      # one cycle now (what the schedule runs): invoiz_ops.fleet.cycle, multiprocess
    python -m invoiz_ops.fleet.deploy env        # `export` lines to run `dagster dev` / `dagster-daemon run` yourself
    python -m invoiz_ops.fleet.deploy worker     # a Celery worker for --executor celery (as many as you like, any machine)

PostgreSQL: yours by the PG* variables (environment or .env), else the embedded one (like `make demo`). Databases:
the warehouse PGDATABASE (raw_invoiz + analytics), Meltano's system database (state) and Dagster's instance storage
(``--system-db``, ``--dagster-db``). The Dagster CLI runs with its working directory in DAGSTER_HOME, because it
loads ./.env *over* the environment (Meltano does the opposite). docs/FLEET.md has the whole picture; the demo is `python -m invoiz_ops.fleet.demo`
(make fleet-demo).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from psycopg import sql

from invoiz_ops import accounts as fleet_accounts
from invoiz_ops.fleet.run_history import RunHistory
from invoiz_ops.pipeline import PROJECT_ROOT, connect, database_server, load_dotenv_database_settings
from tap_invoiz.accounts import credential_variables

DAGSTER_VENV = PROJECT_ROOT / ".venv-dagster"
DEFINITIONS = Path(__file__).resolve().parent / "definitions.py"
DEFINITIONS_MODULE = "invoiz_ops.fleet.definitions"
MELTANO = str(Path(sys.executable).parent / "meltano")

DAGSTER_YAML = """\
# Written by `python -m invoiz_ops.fleet.deploy deploy`. Instance storage (runs, events, schedules) in PostgreSQL;
# the connection comes from the PG* variables of the process that runs Dagster.
telemetry:
  enabled: false
storage:
  postgres:
    postgres_db:
      hostname: {{env: PGHOST}}
      port: {{env: PGPORT}}
      username: {{env: PGUSER}}
      password: {{env: PGPASSWORD}}
      db_name: {db}
# At most one step per pool at a time across all runs: every account is its own pool (ops/invoiz_ops/fleet/definitions.py).
concurrency:
  pools:
    granularity: op
    default_limit: 1
  runs:
    max_concurrent_runs: {max_runs}
# Self-healing (docs/FLEET.md, "Recover"): dagster-daemon fails a run that has not started within start_timeout or
# has run longer than max_runtime (a run whose processes were killed stays STARTED otherwise, holding its pools'
# slots; the default run launcher has no worker health check), and frees the slots of finished runs. The next
# cycle then loads every account. A run tagged dagster/max_runtime uses its own limit.
run_monitoring:
  enabled: true
  start_timeout_seconds: {start_timeout}
  cancel_timeout_seconds: {cancel_timeout}
  max_runtime_seconds: {max_runtime}
  poll_interval_seconds: {poll_interval}
  free_slots_after_run_end_seconds: {free_slots_after}
"""


@dataclass
class Fleet(RunHistory):
    """Where a fleet runs: its Meltano project, its databases and Dagster home."""

    project: Path
    pg_env: dict[str, str]
    warehouse: str
    system_db: str = "invoiz_fleet_meltano"
    dagster_db: str = "invoiz_fleet_dagster"
    dagster_home: Path | None = None
    max_concurrent: int = 2
    shards: int = 0  # 0: one step per account; N: N steps, each syncing its accounts in one process
    # run monitoring (dagster.yaml): a cycle running longer is failed and its pool slots freed
    max_runtime_seconds: int = 1800
    monitor_poll_seconds: int = 30
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. TAP_INVOIZ_API_URL, account credentials
    inherit_settings: bool = True  # False (tests): no TAP_INVOIZ*/TARGET_POSTGRES_*/DBT_POSTGRES_* from this process
    executor: str = "multiprocess"  # or "celery": steps on the workers listening to broker_url (docs/FLEET.md)
    broker_url: str = ""  # the Celery broker (and result backend); deploy starts an embedded one when empty
    step_timeout: int = 3600  # seconds one `meltano run` may take
    # celery: seconds after which a dead worker's step goes to another worker; longer than the longest load
    # (0: the step timeout + a quarter, invoiz_ops.fleet.celery_worker.visibility_timeout)
    visibility_timeout: int = 0
    work_dir: Path | None = None  # per-step folders (default: <project>/.fleet/steps)

    def __post_init__(self) -> None:
        self.project = Path(self.project).resolve()
        self.dagster_home = Path(self.dagster_home or self.project / ".fleet" / "dagster-home").resolve()
        self.work_dir = Path(self.work_dir or self.project / ".fleet" / "steps").resolve()

    def system_db_uri(self) -> str:
        pg = self.pg_env
        password = quote(pg.get("PGPASSWORD") or "", safe="")
        return (
            f"postgresql+psycopg://{quote(pg['PGUSER'], safe='')}:{password}@{pg['PGHOST']}:{pg['PGPORT']}/"
            f"{self.system_db}"
        )

    def env(self) -> dict[str, str]:
        """Environment for Meltano and Dagster: the caller's (account credentials included), the fleet's settings."""
        owned = ("PG", "MELTANO_", "DAGSTER_", "INVOIZ_FLEET_")
        if not self.inherit_settings:
            owned += ("TAP_INVOIZ", "TARGET_POSTGRES_", "DBT_POSTGRES_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(owned)}
        env.update(self.pg_env)
        env.update(
            PGDATABASE=self.warehouse,
            MELTANO_DATABASE_URI=self.system_db_uri(),
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
            DAGSTER_HOME=str(self.dagster_home),
            INVOIZ_FLEET_PROJECT=str(self.project),
            INVOIZ_FLEET_MELTANO=MELTANO,
            INVOIZ_FLEET_PLUGINS=str(PROJECT_ROOT / ".meltano"),
            INVOIZ_FLEET_WORK=str(self.work_dir),
            INVOIZ_FLEET_MAX_CONCURRENT=str(self.max_concurrent),
            INVOIZ_FLEET_SHARDS=str(self.shards),
            INVOIZ_FLEET_EXECUTOR=self.executor,
            INVOIZ_FLEET_STEP_TIMEOUT=str(self.step_timeout),
        )
        if self.broker_url:
            env["INVOIZ_FLEET_BROKER"] = self.broker_url
        if self.visibility_timeout:
            env["INVOIZ_FLEET_VISIBILITY_TIMEOUT"] = str(self.visibility_timeout)
        env.update(self.extra_env)
        return env

    # -- deploy ------------------------------------------------------------------------------------------------------
    def create_databases(self) -> None:
        with connect(self.pg_env, autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}
            for name in (self.warehouse, self.system_db, self.dagster_db):
                if name not in existing:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name))
                    )

    def deploy(self) -> None:
        """Run once before parallel runs: several Meltano processes migrating a fresh system database at once fail."""
        if not (DAGSTER_VENV / "bin" / "dagster").exists():
            raise SystemExit("the Dagster virtualenv is missing: run `make dagster`")
        self.create_databases()
        self._run([MELTANO, "upgrade", "database"], cwd=self.project)
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        (self.dagster_home / "dagster.yaml").write_text(self.dagster_yaml())
        self._run([str(DAGSTER_VENV / "bin" / "dagster"), "instance", "migrate"], cwd=self.dagster_home)
        # every pool before any run claims one (two runs creating a new pool at once fail one of them)
        self._run([str(DAGSTER_VENV / "bin" / "python"), "-m", "invoiz_ops.fleet.pools"], cwd=self.dagster_home)
        # the raw tables, once, before any parallel load (target-postgres' CREATE TABLE is not safe in parallel)
        self._run([sys.executable, "-m", "invoiz_ops.fleet.schema_step"], cwd=self.dagster_home)

    def dagster_yaml(self) -> str:
        poll = self.monitor_poll_seconds
        return DAGSTER_YAML.format(
            db=self.dagster_db,
            max_runs=max(1, self.max_concurrent),
            start_timeout=max(60, 4 * poll),
            cancel_timeout=max(30, 2 * poll),
            max_runtime=self.max_runtime_seconds,
            poll_interval=poll,
            free_slots_after=poll,
        )

    # -- run -----------------------------------------------------------------------------------------------------------
    def cycle(self, check: bool = False, timeout: float = 3600) -> subprocess.CompletedProcess:
        """One fleet cycle through the Dagster CLI (a real multiprocess run in the instance), as the schedule runs it."""
        return self._run(self.cycle_command(), cwd=self.dagster_home, check=check, timeout=timeout)

    def cycle_command(self, tags: dict[str, str] | None = None) -> list[str]:
        """`python -m invoiz_ops.fleet.cycle` in the Dagster virtualenv: `dagster job execute` without its
        "superseded" warning on every cycle."""
        command = [str(DAGSTER_VENV / "bin" / "python"), "-m", "invoiz_ops.fleet.cycle"]
        if tags:
            import json

            command += ["--tags", json.dumps(tags)]
        return command

    def start(self, args: list[str], log: Path) -> subprocess.Popen:
        """Start a Dagster command (a cycle, the daemon) in the background in its own process group, from
        DAGSTER_HOME, its output to ``log``."""
        with open(log, "ab") as out:
            return subprocess.Popen(
                args,
                cwd=self.dagster_home,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def daemon_command(self) -> list[str]:
        return [str(DAGSTER_VENV / "bin" / "dagster-daemon"), "run", "-f", str(DEFINITIONS)]

    # -- several machines (executor celery) --------------------------------------------------------------------------
    def start_broker(self, folder: Path, port: int) -> str:
        """The embedded valkey broker (invoiz_ops.fleet.broker) in FOLDER; sets and returns broker_url."""
        proc = self._run(
            [str(DAGSTER_VENV / "bin" / "python"), "-m", "invoiz_ops.fleet.broker", "start", "--dir", str(folder)]
            + ["--port", str(port)],
            cwd=self.dagster_home if self.dagster_home.exists() else Path(folder).parent,
        )
        self.broker_url = proc.stdout.strip().splitlines()[-1]
        return self.broker_url

    def start_worker(self, name: str, concurrency: int = 2, log_file: Path | None = None) -> subprocess.Popen:
        """A Celery worker named NAME running this fleet's steps, in its own session (stop it by its process group).
        It runs from this fleet's project (INVOIZ_FLEET_PROJECT) and step folders; it needs only the databases and
        the broker in common with the other workers."""
        if not self.broker_url:
            raise RuntimeError("no broker: start one (start_broker) or set broker_url")
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        log = open(log_file or self.dagster_home / f"worker-{name}.log", "ab")
        args = [str(DAGSTER_VENV / "bin" / "celery"), "-A", "invoiz_ops.fleet.celery_worker", "worker"]
        args += ["--hostname", f"{name}@%h", "--concurrency", str(concurrency), "--loglevel", "INFO"]
        args += ["--without-gossip", "--without-mingle", "--queues", "dagster"]
        return subprocess.Popen(
            args,
            cwd=self.dagster_home,
            env={**self.env(), "INVOIZ_FLEET_WORKER": name},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _run(self, args: list[str], cwd: Path, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            args, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(Path(a).name if i == 0 else a for i, a in enumerate(args))} failed "
                f"(exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
            )
        return proc


def from_environment(args: argparse.Namespace) -> tuple[Fleet, bool]:
    load_dotenv_database_settings()
    pg_env, started = database_server()
    fleet = Fleet(
        project=Path(args.project),
        pg_env=pg_env,
        warehouse=os.environ.get("PGDATABASE") or "invoiz_fleet",
        max_concurrent=args.max_concurrent,
        shards=args.shards,
        executor=args.executor,
        broker_url=args.broker or "",
        step_timeout=args.step_timeout,
        visibility_timeout=args.visibility_timeout,
    )
    return fleet, started


def embedded_broker(fleet: Fleet, port: int, start: bool) -> None:
    """--executor celery without --broker: the embedded valkey in <project>/.fleet/broker (started by deploy)."""
    if fleet.executor != "celery" or fleet.broker_url:
        return
    folder = fleet.project / ".fleet" / "broker"
    if start:
        fleet.start_broker(folder, port)
    else:
        fleet.broker_url = f"redis://127.0.0.1:{port}/0"


def credentials_env(fleet_sandbox, names, installation_ids) -> dict[str, str]:
    env = {}
    for name, installation in zip(names, installation_ids):
        creds = fleet_sandbox.credentials(installation)
        env.update({variable: creds[setting] for setting, variable in credential_variables(name).items()})
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m invoiz_ops.fleet.deploy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["check", "deploy", "cycle", "env", "worker"])
    parser.add_argument("--project", default=str(PROJECT_ROOT), help="the Meltano project (default: this checkout)")
    parser.add_argument("--max-concurrent", type=int, default=2, help="steps at once (multiprocess executor)")
    parser.add_argument(
        "--shards",
        type=int,
        default=int(os.environ.get("INVOIZ_FLEET_SHARDS") or 0),
        help="0: one step per account (default); N: N steps, each syncing its accounts in one process",
    )
    parser.add_argument(
        "--executor",
        choices=["multiprocess", "celery"],
        default=os.environ.get("INVOIZ_FLEET_EXECUTOR") or "multiprocess",
        help="multiprocess: steps on this machine (default); celery: steps on every `worker` (docs/FLEET.md)",
    )
    parser.add_argument(
        "--broker",
        default=os.environ.get("INVOIZ_FLEET_BROKER"),
        help="celery: the broker's URL (redis://…); default: an embedded valkey on 127.0.0.1:--broker-port",
    )
    parser.add_argument("--broker-port", type=int, default=6390, help="port of the embedded broker")
    parser.add_argument(
        "--step-timeout",
        type=int,
        default=int(os.environ.get("INVOIZ_FLEET_STEP_TIMEOUT") or 3600),
        help="seconds one `meltano run` may take",
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=int(os.environ.get("INVOIZ_FLEET_VISIBILITY_TIMEOUT") or 0),
        help="celery: seconds after which a dead worker's step goes to another worker; must be longer than the "
        "longest load (default: the step timeout + a quarter)",
    )
    parser.add_argument("--name", default=None, help="worker: its name (default: the host name)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker: steps it runs at once")
    args = parser.parse_args(argv)
    if args.command == "check":
        return fleet_accounts.main(["--project", args.project, "check"])
    fleet, _ = from_environment(args)
    embedded_broker(fleet, args.broker_port, start=args.command in ("deploy", "cycle"))
    if args.command == "worker":
        if fleet.executor != "celery":
            raise SystemExit("a worker serves --executor celery (or INVOIZ_FLEET_EXECUTOR=celery)")
        import socket

        proc = fleet.start_worker(args.name or socket.gethostname(), args.concurrency, log_file=Path("/dev/stdout"))
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            return proc.wait()
    if args.command == "env":
        for key, value in fleet.env().items():
            if key.startswith(("PG", "MELTANO_", "DAGSTER_", "INVOIZ_FLEET_")):
                print(f"export {key}={value!r}")
        print(f"# then, from {fleet.dagster_home}: {DAGSTER_VENV}/bin/dagster dev -f {DEFINITIONS}", file=sys.stderr)
        return 0
    problems = fleet_accounts.check(fleet.project, fleet.env())
    if problems:
        print("\n".join(f"refused: {p}" for p in problems), file=sys.stderr)
        return 1
    fleet.deploy()
    if args.command == "cycle":
        proc = fleet.cycle()
        status, steps = fleet.last_run_steps()
        print(f"{status}: " + ", ".join(f"{k} {v}" for k, v in steps.items()))
        return proc.returncode
    print(f"deployed: system database {fleet.system_db}, Dagster storage {fleet.dagster_db}, home {fleet.dagster_home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
