"""`.env.example` is the template of `.env`: every variable the README tells a user to set is in it, no value is
filled in (secrets never), and the README says how to make a private copy. The LICENSE file matches pyproject."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TEMPLATE = (ROOT / ".env.example").read_text(encoding="utf-8")
#: Variables a user sets for the tap, its further accounts and their own PostgreSQL (not the tests' TEST_PG*).
USER_VARIABLE = re.compile(r"(?<![A-Z_])(TAP_INVOIZ_[A-Z0-9_]*[A-Z0-9]|PG(?:HOST|PORT|USER|PASSWORD|DATABASE))\b")
ASSIGNMENT = re.compile(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=(.*)$", re.M)


def test_every_variable_the_readme_names_is_in_the_template():
    named = set(USER_VARIABLE.findall(README))
    assert {"TAP_INVOIZ_API_KEY", "TAP_INVOIZ_API_KEY_SECRET", "TAP_INVOIZ_INSTALLATION_ID", "PGHOST"} <= named
    in_template = {name for name, _ in ASSIGNMENT.findall(TEMPLATE)}
    # a further account's variables (TAP_INVOIZ__<NAME>_<SETTING>): the template shows each setting for one example name
    account_settings = {n.split("_", 4)[-1] for n in in_template if n.startswith("TAP_INVOIZ__")}
    missing = {
        n
        for n in named - in_template
        if not (n.startswith("TAP_INVOIZ__") and any(n.endswith("_" + setting) for setting in account_settings))
    }
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_the_template_fills_in_nothing():
    filled = {name: value for name, value in ASSIGNMENT.findall(TEMPLATE) if value.strip()}
    assert not filled, f".env.example must leave values empty: {sorted(filled)}"


def test_the_readme_says_how_to_make_a_private_copy():
    assert "cp .env.example .env && chmod 600 .env" in README


def test_the_license_file_is_the_one_pyproject_names():
    license_id = tomllib.loads((ROOT / "tap-invoiz" / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "license"
    ]
    assert license_id == "Apache-2.0"
    for path in (ROOT / "LICENSE", ROOT / "tap-invoiz" / "LICENSE"):  # the repository's and the distribution's
        text = path.read_text(encoding="utf-8")
        assert (
            "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
        )
    assert (ROOT / "LICENSE").read_bytes() == (ROOT / "tap-invoiz" / "LICENSE").read_bytes()
