"""The sandbox is its own distribution (invoiz-sandbox/): ``pip install tap-invoiz`` brings no Faker, the tap works
without it, and the sandbox (module and ``invoiz-sandbox`` command) says how to get it instead of a bare traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (make test-pythons): the packaging check below runs on 3.11+
    tomllib = None

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def without_faker(tmp_path) -> dict[str, str]:
    """An environment in which ``import faker`` fails as it does where only the tap is installed."""
    stub = tmp_path / "faker"
    stub.mkdir()
    (stub / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'faker'\", name='faker')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_INVOIZ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.skipif(tomllib is None, reason="reads pyproject.toml with tomllib (Python 3.11+)")
def test_faker_is_only_in_the_sandbox_distribution():
    tap = tomllib.loads((ROOT / "tap-invoiz" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    tap_deps = tap["dependencies"] + [d for extra in tap.get("optional-dependencies", {}).values() for d in extra]
    assert not any(dep.lower().startswith("faker") for dep in tap_deps)
    sandbox = tomllib.loads((ROOT / "invoiz-sandbox" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert any(dep.lower().startswith("faker") for dep in sandbox["dependencies"])
    requirements = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert "-e ./invoiz-sandbox" in requirements.splitlines()


def test_the_tap_runs_without_faker(without_faker):
    assert "No module named 'faker'" in _run([sys.executable, "-c", "import faker"], without_faker).stderr
    result = _run([sys.executable, "-m", "tap_invoiz.tap", "--about", "--format=json"], without_faker)
    assert result.returncode == 0, result.stderr
    assert '"name": "tap-invoiz"' in result.stdout


def test_importing_the_sandbox_without_faker_names_it(without_faker):
    result = _run([sys.executable, "-c", "import invoiz_sandbox"], without_faker)
    assert result.returncode != 0
    assert "pip install -e ./invoiz-sandbox" in result.stderr


def test_the_sandbox_command_without_faker_says_so_in_one_line(without_faker):
    exe = Path(sys.executable).with_name("invoiz-sandbox")
    if not exe.exists():
        pytest.skip("no invoiz-sandbox console script next to this Python")
    result = _run([str(exe), "--port", "0"], without_faker)
    assert result.returncode == 1
    assert result.stderr.strip() == "invoiz-sandbox: the invoiz sandbox needs Faker: pip install -e ./invoiz-sandbox"
    assert result.stdout == ""
