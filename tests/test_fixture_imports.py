"""Test layers need only what they test: the shared fixtures (tests/conftest.py) import the pipeline tooling and
psycopg only when a test asks for a database, so the tap's tests run where neither is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tap_tests_run_without_psycopg(tmp_path):
    stub = tmp_path / "psycopg"
    stub.mkdir()
    (stub / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_INVOIZ_", "PG"))}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/tap/test_records.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
