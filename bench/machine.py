"""What machine and software a benchmark ran on: CPU, cores, RAM, OS, Python, plugin package versions, PostgreSQL.

Standard library only. Linux details come from /proc; elsewhere the fields fall back to `platform` and say "unknown".
Package versions are read from each Meltano plugin's own virtualenv (that is what `meltano run` executes).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from invoiz_ops.pipeline import PROJECT_ROOT, connect

PLUGIN_VENVS = {
    "tap-invoiz": PROJECT_ROOT / ".meltano" / "extractors" / "tap-invoiz" / "venv",
    "target-postgres": PROJECT_ROOT / ".meltano" / "loaders" / "target-postgres" / "venv",
    "dbt-postgres": PROJECT_ROOT / ".meltano" / "utilities" / "dbt-postgres" / "venv",
}


def _site_packages(venv: Path) -> list[str]:
    return [str(p) for p in venv.glob("lib/python*/site-packages")] + [str(p) for p in venv.glob("Lib/site-packages")]


def package_version(distribution: str, venv: Path | None = None) -> str:
    """Version of a distribution in `venv` (default: the interpreter running the benchmark), or 'not installed'."""
    if venv is None:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return "not installed"
    wanted = distribution.lower().replace("_", "-")
    for dist in metadata.distributions(path=_site_packages(venv)):
        if (dist.metadata["Name"] or "").lower().replace("_", "-") == wanted:
            return dist.version
    return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    try:
        return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        return "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip().strip(chr(34))} (kernel {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "unknown"


def postgres_version(pg_env: dict[str, str]) -> str:
    try:
        with connect(pg_env) as conn:
            return str(conn.execute("show server_version").fetchone()[0])
    except Exception as exc:  # a description must not fail the benchmark
        return f"unknown ({type(exc).__name__})"


def project_revision() -> str:
    """The commit measured, and whether the tap's source differed from it (it is installed editable)."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown (not a git checkout)"
    changed = git("status", "--porcelain", "--", "tap-invoiz", "meltano.yml")
    return commit + (" + uncommitted changes in tap-invoiz/ or meltano.yml" if changed else "")


def describe(pg_env: dict[str, str], database_kind: str) -> dict[str, str]:
    """Label → value, in the order the report prints them."""
    venvs = PLUGIN_VENVS
    return {
        "CPU": _cpu_model(),
        "cores (logical)": str(os.cpu_count() or "unknown"),
        "RAM": _ram(),
        "OS": _os_name(),
        "Python": f"{platform.python_version()} ({sys.implementation.name})",
        "load average at start (1/5/15 min)": load_average(),
        "project revision": project_revision(),
        "meltano": package_version("meltano"),
        "singer-sdk (tap)": package_version("singer-sdk", venvs["tap-invoiz"]),
        "tap-invoiz": package_version("tap-invoiz", venvs["tap-invoiz"]),
        "meltanolabs-target-postgres": package_version("meltanolabs-target-postgres", venvs["target-postgres"]),
        "singer-sdk (target)": package_version("singer-sdk", venvs["target-postgres"]),
        "psycopg (target)": package_version("psycopg", venvs["target-postgres"]),
        "dbt-core": package_version("dbt-core", venvs["dbt-postgres"]),
        "dbt-postgres": package_version("dbt-postgres", venvs["dbt-postgres"]),
        "PostgreSQL": f"{postgres_version(pg_env)} ({database_kind})",
        "requests (baseline loop)": package_version("requests"),
    }
