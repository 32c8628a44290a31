"""A backfill's setting is checked against the accounts declared now, not against the code location's loaded copy: an
account added after the code location was loaded (no reload since) can be backfilled in both modes, an unknown name
is refused. Runs the code location in the Dagster virtualenv (no database needed to build and check a run config)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from invoiz_ops import accounts
from invoiz_ops.fleet.deploy import DAGSTER_VENV

CHECKOUT = Path(__file__).resolve().parents[2]

# loads the code location, then declares one more account, then checks run configs against the loaded copy
SCRIPT = """
import json, sys
from pathlib import Path
from dagster import DagsterConfigMappingFunctionError, DagsterInvalidConfigError, validate_run_config
from invoiz_ops import accounts
from invoiz_ops.fleet import definitions

project = Path(sys.argv[1])
(project / "accounts" / "fleet.yml").write_text("accounts:\\n- name: acme\\n- name: joined\\n")
accounts.generate(project)
job = definitions.defs.get_job_def("fleet_cycle")
outcome = {}
for name in ("joined", "nobody"):
    try:
        validate_run_config(job, {"full_refresh_accounts": [name]})
        outcome[name] = "accepted"
    except (DagsterConfigMappingFunctionError, DagsterInvalidConfigError) as exc:
        outcome[name] = f"{exc} {exc.__cause__}"
print(json.dumps(outcome))
"""


@pytest.mark.parametrize("shards", [0, 2])
def test_an_account_added_after_the_code_location_loaded_can_be_backfilled(tmp_path, shards):
    if not (DAGSTER_VENV / "bin" / "python").exists():
        pytest.fail("the Dagster virtualenv is missing: run `make dagster` (make test does)")
    shutil.copy(CHECKOUT / "meltano.yml", tmp_path / "meltano.yml")
    (tmp_path / "accounts").mkdir()
    (tmp_path / "accounts" / "fleet.yml").write_text("accounts:\n- name: acme\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_INVOIZ", "INVOIZ_FLEET"))}
    env.update(INVOIZ_FLEET_PROJECT=str(tmp_path), INVOIZ_FLEET_SHARDS=str(shards), DAGSTER_HOME=str(tmp_path))
    accounts.generate(tmp_path)
    proc = subprocess.run(
        [str(DAGSTER_VENV / "bin" / "python"), "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["joined"] == "accepted"
    assert "no such account(s) nobody" in outcome["nobody"]
