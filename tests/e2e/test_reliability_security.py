"""Secrets never logged, even at the most verbose logging; the embedded PostgreSQL unreachable from other addresses
(docs/RELIABILITY.md)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from e2e_helpers import EL, meltano, output, own_meltano_dirs  # noqa: F401 (autouse fixture)

from invoiz_ops import embedded_db
from invoiz_ops.pipeline import PROJECT_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Every logging knob at its most verbose: Meltano, singer-sdk (tap and target), urllib3 (through the tap's DEBUG),
# SQLAlchemy's engine echo is not a setting of target-postgres 0.8.1; dbt at debug.
# target-postgres: its log level is the loader setting log_level (TARGET_POSTGRES_LOG_LEVEL), its logging config the
# setting log_config (replaced in the test by one with every logger at DEBUG).
DEBUG_ENV = {
    "LOGLEVEL": "DEBUG",
    "TAP_INVOIZ_LOGLEVEL": "DEBUG",
    "TARGET_POSTGRES_LOG_LEVEL": "DEBUG",
    "DBT_LOG_LEVEL": "debug",
    "DBT_LOG_LEVEL_FILE": "debug",
    "DBT_DEBUG": "true",
    "TAP_INVOIZ_PAGE_SIZE": "10",
}


def _secret(name: str) -> str:
    return f"{name}-{secrets.token_hex(10)}"  # distinctive: a hit can only be a leak


def _files_written_since(roots: list[Path], since: float) -> list[Path]:
    found = []
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*") if root.is_dir() else [root]:
            if "venv" in path.parts or not path.is_file() or path.is_symlink():
                continue
            try:
                if path.stat().st_mtime >= since:
                    found.append(path)
            except OSError:
                continue
    return found


def _leaks(secret_values: dict[str, str], texts: dict[str, bytes]) -> list[str]:
    return [
        f"{name} in {where}"
        for name, value in secret_values.items()
        for where, data in texts.items()
        if value.encode() in data
    ]


@pytest.mark.invoiz_sandbox(
    credentials={
        "api_key": _secret("apikey"),
        "api_key_secret": _secret("apisecret"),
        "installation_id": _secret("installation"),
    }
)
def test_no_secret_in_any_output_or_log_at_debug(pipeline, invoiz_sandbox, own_meltano_dirs):  # noqa: F811 (the fixture)
    sb = invoiz_sandbox
    pipeline.credentials = dict(sb.credentials)
    pg_password = _secret("pgpassword")  # trust auth accepts any password; a distinctive one makes a leak visible
    pipeline.pg_env = {**pipeline.pg_env, "PGPASSWORD": pg_password}
    pipeline.extra_env.update(DEBUG_ENV)
    target_logging = own_meltano_dirs / "target-postgres-logging-debug.yaml"
    target_logging.write_text(
        "version: 1\ndisable_existing_loggers: false\nformatters: {plain: {format: '%(message)s'}}\n"
        "handlers: {console: {class: logging.StreamHandler, formatter: plain, "
        "stream: 'ext://sys.stderr'}}\nroot: {handlers: [console], level: DEBUG}\n"
    )
    pipeline.extra_env["TARGET_POSTGRES_LOG_CONFIG"] = str(target_logging)
    sb.fault("token_expiry", after_requests=4)  # re-authentication too
    sb.fault("rate_limit", scope="invoice_list", times=1, retry_after=0)
    started = time.time() - 1

    runs = {
        "sync at debug": meltano(pipeline, "--log-level=debug", "run", "sync"),
        # failures print more: rejected credentials, an unreachable database
        "wrong credentials at debug": meltano(
            pipeline, "--log-level=debug", "run", *EL, env={"TAP_INVOIZ_API_KEY_SECRET": _secret("wrongsecret")}
        ),
        "database down at debug": meltano(
            pipeline, "--log-level=debug", "run", *EL, env={"PGPORT": str(_closed_port())}
        ),
        "config list": meltano(pipeline, "config", "list", "tap-invoiz"),
    }
    assert runs["sync at debug"].returncode == 0, output(runs["sync at debug"])[-3000:]
    assert runs["wrong credentials at debug"].returncode != 0
    assert runs["database down at debug"].returncode != 0
    assert runs["config list"].returncode == 0, output(runs["config list"])[-2000:]
    sync_log = output(runs["sync at debug"])
    assert re.search(r"\[debug +\] tap-invoiz", sync_log), "the tap did not log at DEBUG"
    assert re.search(r"\[debug +\] meltano", sync_log), "Meltano did not log at debug"
    assert "GET /api/invoice?" in sync_log  # urllib3's request lines are there (path and query only)

    tokens = sb.issued_tokens()
    assert len(tokens) >= 2, "the token was never renewed"
    secret_values = {
        **{k: v for k, v in sb.credentials.items()},
        "PGPASSWORD": pg_password,
        **{f"bearer token {i}": token for i, token in enumerate(tokens)},
    }
    texts = {f"output of {name}": output(result).encode() for name, result in runs.items()}
    # every file Meltano, the plugins and dbt wrote meanwhile: run dirs, logs, the system db (runs, state), dbt
    roots = [
        own_meltano_dirs,
        pipeline.state_dir,
        PROJECT_ROOT / "transform",
        *(PROJECT_ROOT / ".meltano" / name for name in ("run", "logs", "meltano.db")),
    ]
    for path in _files_written_since(roots, started):
        texts[str(path)] = path.read_bytes()
    assert any("meltano.db" in where for where in texts), "the Meltano system db was not checked"
    assert any("dbt-logs" in where for where in texts), "dbt's log file was not checked"
    assert _leaks(secret_values, texts) == []
    # the plugins' config files (which hold the secrets while a plugin runs) are gone afterwards
    leftovers = list((own_meltano_dirs / "meltano-sys" / "run").rglob("*.config.json"))
    assert leftovers == []


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when we return: nothing listens there


def _non_loopback_addresses() -> list[str]:
    addresses = []
    ip = shutil.which("ip")
    if ip:
        for family in ("-4", "-6"):
            text = subprocess.run(
                [ip, "-o", family, "addr", "show"], capture_output=True, text=True, check=False
            ).stdout
            for match in re.finditer(r"inet6? ([0-9a-fA-F.:]+)/\d+ [^\n]*?scope (\w+)", text):
                address, scope = match.groups()
                if scope == "global":
                    addresses.append(address)
    else:  # no iproute2: the addresses the host name resolves to
        import socket

        try:
            addresses = [a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")]
        except OSError:
            addresses = []
    return addresses


def test_embedded_postgres_listens_on_loopback_only(pg_env):
    if os.environ.get("TEST_PGHOST") or not embedded_db.is_running():
        pytest.skip("not the embedded PostgreSQL (TEST_PGHOST is set): its network setup is the user's")
    with psycopg.connect(
        host=pg_env["PGHOST"],
        port=int(pg_env["PGPORT"]),
        user=pg_env["PGUSER"],
        dbname=pg_env["PGDATABASE"],
        password=pg_env["PGPASSWORD"],
    ) as conn:
        listen = conn.execute("show listen_addresses").fetchone()[0]
        socket_dirs = conn.execute("show unix_socket_directories").fetchone()[0]
        rules = conn.execute(
            "select type, address, netmask, auth_method from pg_hba_file_rules where error is null"
        ).fetchall()
    assert [a.strip() for a in listen.split(",")] in (["127.0.0.1"], ["localhost"], ["127.0.0.1", "::1"])
    # trust is granted to local sockets and loopback addresses only
    for kind, address, netmask, method in rules:
        if method == "trust" and kind != "local":
            assert address in ("127.0.0.1", "::1"), (kind, address, netmask)
    # the unix socket (trust for `local`) sits in a folder only the server's OS user can enter
    for folder in filter(None, (d.strip() for d in socket_dirs.split(","))):
        if Path(folder).exists():
            assert Path(folder).stat().st_mode & 0o077 == 0, f"socket folder {folder} is open to other users"
    others = _non_loopback_addresses()
    if not others:
        pytest.skip("this machine has no non-loopback address to try")
    for address in others:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(
                host=address, port=int(pg_env["PGPORT"]), user=pg_env["PGUSER"], dbname="postgres", connect_timeout=3
            ).close()


def test_make_install_keeps_meltano_dir_private():
    """Meltano writes each running plugin's config, secrets included, world-readable into .meltano/run/<plugin>/;
    `make install` closes the folder to other users."""
    stamp = PROJECT_ROOT / ".meltano" / ".installed"
    if not stamp.exists():
        pytest.skip("the plugins were not installed by `make install` (no .meltano/.installed)")
    mode = (PROJECT_ROOT / ".meltano").stat().st_mode & 0o777
    assert mode == 0o700, f".meltano has mode {oct(mode)}; other users could read plugin configs with secrets"
