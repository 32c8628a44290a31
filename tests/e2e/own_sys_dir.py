"""Give one test's `meltano run`s their own Meltano system dir and dbt target dir.

Every `meltano run` in a project writes its plugins' config and catalog to `.meltano/run/<plugin>/` and dbt writes
`transform/target/`; two runs at the same time in one checkout (parallel test sessions) overwrite each other's files
(seen: "tap.properties.json: No such file", a truncated catalog). MELTANO_SYS_DIR_ROOT moves `.meltano` to a test's
folder; the plugin virtualenvs stay shared through symlinks, so nothing is installed again.
"""

from __future__ import annotations

from pathlib import Path

from tools.pipeline import PROJECT_ROOT


def own_sys_dir_env(folder: Path) -> dict[str, str]:
    sys_dir = folder / "meltano-sys"
    sys_dir.mkdir(parents=True, exist_ok=True)
    for plugin_type in ("extractors", "loaders", "utilities"):
        link = sys_dir / plugin_type
        if not link.exists():
            link.symlink_to(PROJECT_ROOT / ".meltano" / plugin_type, target_is_directory=True)
    return {
        "MELTANO_SYS_DIR_ROOT": str(sys_dir),
        "DBT_TARGET_PATH": str(folder / "dbt-target"),
        "DBT_LOG_PATH": str(folder / "dbt-logs"),
    }
