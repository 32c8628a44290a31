"""Private folders for one `meltano run`: its own Meltano system dir (plugin virtualenvs linked in) and dbt dirs.

Every `meltano run` writes its plugins' config, catalog and state to fixed names in `.meltano/run/<plugin>/`, and
dbt writes `transform/target/`: two runs at once in one project (parallel test sessions, a benchmark beside the
tests, the fleet's steps) overwrite and delete each other's files. The installed plugin virtualenvs are shared through
symlinks, so nothing is installed again.

Standard library only: used by the run helpers of the project's .venv (invoiz_ops.pipeline) and by the Dagster code
location (invoiz_ops.fleet.runner).
"""

from __future__ import annotations

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]  # ops/invoiz_ops/run_dirs.py → the checkout
PLUGIN_TYPES = ("extractors", "loaders", "utilities")


def private_run_dirs(folder: Path, plugins: Path | None = None) -> dict[str, str]:
    """Environment giving `meltano run`s their own system dir and dbt target/log dirs under ``folder`` (mode 700:
    `.meltano/run/<plugin>/` holds the running plugin's config, secrets included). ``plugins``: the `.meltano` folder
    whose plugin virtualenvs are used (default: this checkout's)."""
    plugins = Path(plugins or CHECKOUT / ".meltano")
    sys_dir = folder / "meltano-sys"
    sys_dir.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for plugin_type in PLUGIN_TYPES:
        link = sys_dir / plugin_type
        if not link.exists():
            link.symlink_to(plugins / plugin_type, target_is_directory=True)
    return {
        "MELTANO_SYS_DIR_ROOT": str(sys_dir),
        "DBT_TARGET_PATH": str(folder / "dbt-target"),
        "DBT_LOG_PATH": str(folder / "dbt-logs"),
    }
