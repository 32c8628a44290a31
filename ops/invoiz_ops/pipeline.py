"""Run the project's Meltano pipeline against a given invoiz API and PostgreSQL database.

Shared by `make demo`, the end-to-end tests and the benchmarks, so all three run exactly what a user runs:
`meltano run ...` in this project, configured only through environment variables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from invoiz_ops import embedded_db
from invoiz_ops.accounts import FLEET_LIST, generate, write_account

# the tests, the demo and the benchmarks take it from here, with the rest of what a run needs
from invoiz_ops.run_dirs import private_run_dirs as private_run_dirs
from tap_invoiz.accounts import setting_variable

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # ops/invoiz_ops/<module>.py → the checkout
MELTANO = str(Path(sys.executable).parent / "meltano")

# Variables that would make a run read settings we did not choose (a developer's shell or .env).
_OWNED_PREFIXES = ("TAP_INVOIZ_", "TARGET_POSTGRES_", "DBT_POSTGRES_", "PG", "MELTANO_")

# Meltano reads the project's .env on every command (below the environment, but above meltano.yml's values): a
# user's TAP_INVOIZ_START_DATE or TARGET_POSTGRES_* there would leak into the demo's and the tests' runs. Pointing
# --env-file at a file that is never a regular file makes Meltano read none; our runs are configured by env() alone.
IGNORE_DOTENV = ("--env-file", os.devnull)


# target-postgres logging at INFO (meltano.yml keeps it quiet for users): the end-to-end tests and the benchmarks read
# its METRIC lines and its reader summary.
VERBOSE_TARGET = {
    "TARGET_POSTGRES_LOG_LEVEL": "info",
    "TARGET_POSTGRES_LOG_CONFIG": str(PROJECT_ROOT / "config" / "target-postgres-logging-verbose.yaml"),
}


def meltano_command(*args: str) -> list[str]:
    """argv of `meltano ARGS` in this project, ignoring the project's .env (see IGNORE_DOTENV)."""
    return [MELTANO, *IGNORE_DOTENV, *args]


def database_server() -> tuple[dict[str, str], bool]:
    """PG* variables of the server to use, and whether we started it (embedded) and so must stop it."""
    if os.environ.get("PGHOST"):
        keys = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")
        env = {key: os.environ.get(key, "") for key in keys}
        env["PGPORT"] = env["PGPORT"] or "5432"
        env["PGUSER"] = env["PGUSER"] or "postgres"
        env["PGDATABASE"] = env["PGDATABASE"] or "postgres"
        return env, False
    running_before = embedded_db.is_running()
    return embedded_db.start(), not running_before


def load_dotenv_database_settings() -> None:
    """PG* variables (and DBT_POSTGRES_SCHEMA) from the project's .env into this process; the environment wins.

    Meltano reads .env itself; the demo and the card must see it too, to decide between the user's PostgreSQL and
    the embedded one. Only database settings are read: the invoiz secrets stay with Meltano.
    """
    dotenv = PROJECT_ROOT / ".env"
    if not dotenv.exists():
        return
    for line in dotenv.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        key = key.removeprefix("export ").strip()
        if sep and (key.startswith("PG") or key == "DBT_POSTGRES_SCHEMA") and key not in os.environ:
            os.environ[key] = value.strip().strip("'\"")


def project_copy(
    folder: Path, accounts: list[str] | tuple[str, ...] = (), fleet: list[str] | tuple[str, ...] = ()
) -> Path:
    """A copy of the project under ``folder``/project that uses this checkout's installed plugins, so a test, the
    fleet demo or a benchmark can declare accounts without touching the checkout (or reading its .env):
    meltano.yml and transform/ copied; tap-invoiz/, config/ (target-postgres' logging config) and ops/ (the jobs'
    preflight task) linked; accounts/ with one file per name in ``accounts`` and an accounts/fleet.yml (and its
    generated accounts/fleet.meltano.yml) listing ``fleet``. Use it with :func:`private_run_dirs`, which links the
    plugin virtualenvs."""
    root = folder / "project"
    root.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "meltano.yml", root / "meltano.yml")
    shutil.copytree(
        PROJECT_ROOT / "transform",
        root / "transform",
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"),
    )
    for linked in ("tap-invoiz", "config", "ops"):
        (root / linked).symlink_to(PROJECT_ROOT / linked, target_is_directory=True)
    (root / "accounts").mkdir()
    for account in accounts:
        write_account(account, root / "accounts")
    if fleet:
        (root / FLEET_LIST).write_text(yaml.safe_dump({"accounts": [{"name": name} for name in fleet]}))
        generate(root)
    return root


def connect(pg_env: dict[str, str], database: str | None = None, **kwargs) -> psycopg.Connection:
    return psycopg.connect(
        host=pg_env["PGHOST"],
        port=int(pg_env["PGPORT"]),
        user=pg_env["PGUSER"],
        password=pg_env.get("PGPASSWORD") or None,
        dbname=database or pg_env["PGDATABASE"],
        **kwargs,
    )


def recreate_database(pg_env: dict[str, str], name: str) -> None:
    with connect(pg_env, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name)))


def drop_database(pg_env: dict[str, str], name: str) -> None:
    with connect(pg_env, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass
class Pipeline:
    """One project configuration: an invoiz API, its credentials and account, a database and a state store."""

    pg_env: dict[str, str]
    database: str
    api_url: str
    app_url: str
    credentials: dict[str, str]
    account: str = "demo"
    state_dir: Path | None = None  # own Meltano system db (state), so runs do not share state with others
    extra_env: dict[str, str] = field(default_factory=dict)
    project_root: Path = PROJECT_ROOT
    # account extractors (accounts/<name>.meltano.yml) → their settings, passed as their own TAP_INVOIZ__<NAME>_*
    accounts: dict[str, dict[str, str]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_OWNED_PREFIXES)}
        env.update(self.pg_env)
        env["PGDATABASE"] = self.database
        env.update(
            TAP_INVOIZ_API_URL=self.api_url,
            TAP_INVOIZ_APP_URL=self.app_url,
            TAP_INVOIZ_ACCOUNT=self.account,
            TAP_INVOIZ_API_KEY=self.credentials["api_key"],
            TAP_INVOIZ_API_KEY_SECRET=self.credentials["api_key_secret"],
            TAP_INVOIZ_INSTALLATION_ID=self.credentials["installation_id"],
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        )
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            env["MELTANO_DATABASE_URI"] = f"sqlite:///{self.state_dir / 'meltano.db'}"
        for account, settings in self.accounts.items():
            env.update({setting_variable(account, setting): value for setting, value in settings.items()})
        env.update(self.extra_env)
        return env

    def meltano(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        result = subprocess.run(
            meltano_command(*args),
            cwd=self.project_root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"meltano {' '.join(args)} failed (exit {result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
            )
        return result

    def run(self, *blocks: str, full_refresh: bool = False, check: bool = True) -> subprocess.CompletedProcess:
        """`meltano run [--full-refresh] BLOCK...`, e.g. run("sync") or run("tap-invoiz", "target-postgres")."""
        return self.meltano("run", *(["--full-refresh"] if full_refresh else []), *blocks, check=check)

    def query(self, statement: str, params: tuple | dict | None = None) -> list[tuple]:
        with connect(self.pg_env, self.database) as conn:
            return conn.execute(statement, params).fetchall()

    def scalar(self, statement: str, params: tuple | dict | None = None):
        rows = self.query(statement, params)
        return rows[0][0] if rows else None


def dbt_executable() -> str | None:
    """dbt to call directly (tests): DBT_EXECUTABLE, dbt on PATH, or the one `meltano install` built."""
    candidates = [
        os.environ.get("DBT_EXECUTABLE"),
        shutil.which("dbt"),
        str(PROJECT_ROOT / ".meltano" / "utilities" / "dbt-postgres" / "venv" / "bin" / "dbt"),
    ]
    return next((c for c in candidates if c and Path(c).exists()), None)


def dbt_env(pg_env: dict[str, str], database: str | None = None, schema: str = "analytics") -> dict[str, str]:
    """The environment of a dbt command run directly (tests, benchmarks), not through Meltano: the profile's
    DBT_POSTGRES_* settings for ``pg_env``'s server, ``database`` (default: its PGDATABASE) and ``schema``, none of
    the caller's DBT_* or PG* variables, no usage statistics sent."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "PG"))}
    env.update(
        DBT_POSTGRES_HOST=pg_env["PGHOST"],
        DBT_POSTGRES_PORT=pg_env["PGPORT"],
        DBT_POSTGRES_USER=pg_env["PGUSER"],
        DBT_POSTGRES_PASSWORD=pg_env.get("PGPASSWORD") or "",
        DBT_POSTGRES_DBNAME=database or pg_env["PGDATABASE"],
        DBT_POSTGRES_SCHEMA=schema,
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DO_NOT_TRACK="1",
    )
    return env
