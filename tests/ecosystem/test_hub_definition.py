"""The Meltano Hub definition of tap-invoiz (hub/extractors/): valid for the Hub, and in agreement with meltano.yml and
with the settings singer-sdk reports (`tap-invoiz --about --format json`)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import referencing
import referencing.jsonschema
import tomllib
import yaml
from ecosystem_helpers import HUB_FILE, HUB_SCHEMAS, PROJECT_ROOT
from referencing.exceptions import NoSuchResource
from singer_sdk.helpers.capabilities import BATCH_CONFIG, FLATTENING_CONFIG, STREAM_MAPS_CONFIG

# The settings singer-sdk adds for a capability (the tap itself declares the others).
CAPABILITY_SETTINGS = {
    "stream-maps": set(STREAM_MAPS_CONFIG["properties"]),
    "schema-flattening": set(FLATTENING_CONFIG["properties"]),
    "batch": set(BATCH_CONFIG["properties"]),
}

# JSON Schema type of a tap setting → the Meltano setting kinds that fit it
KINDS = {
    "string": {"string", "password", "options", "date_iso8601", "email", "file"},
    "integer": {"integer"},
    "number": {"decimal"},
    "boolean": {"boolean"},
    "object": {"object"},
    "array": {"array"},
}


def _validator() -> jsonschema.Draft7Validator:
    """The Hub's extractors.schema.json with its $refs resolved to the files next to it (never the network)."""
    root_dir = HUB_SCHEMAS.resolve()

    def retrieve(uri: str) -> referencing.Resource:
        path = Path(uri.removeprefix("file://")).resolve()
        if not uri.startswith("file://") or root_dir not in path.parents or not path.is_file():
            raise NoSuchResource(ref=uri)
        return referencing.jsonschema.DRAFT7.create_resource(json.loads(path.read_text()))

    registry = referencing.Registry(retrieve=retrieve)
    main = HUB_SCHEMAS / "plugin_definitions" / "extractors.schema.json"
    schema = json.loads(main.read_text())
    resource = referencing.jsonschema.DRAFT7.create_resource(schema)
    registry = registry.with_resource(main.resolve().as_uri(), resource)
    schema = {**schema, "$id": main.resolve().as_uri()}
    return jsonschema.Draft7Validator(schema, registry=registry, format_checker=jsonschema.FormatChecker())


def _errors(definition: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(definition)]


def test_the_hub_file_is_a_valid_extractor_definition(hub_definition):
    assert _errors(hub_definition) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d.pop("quality"), "'quality' is a required property"),  # the file's own schema
        (lambda d: d.pop("variant"), "'variant' is a required property"),  # common/common.schema.json
        (lambda d: d["capabilities"].append("hard-delete"), "'hard-delete' is not one of"),  # extractors_specific
        (lambda d: d["settings"][0].update(kind="text"), "'text' is not one of"),  # common/base_setting.schema.json
        (lambda d: d["settings"][0].update(secret=True), "Additional properties are not allowed"),
        (lambda d: d.update(maintenance_status="stable"), "'stable' is not one of"),  # hub_metadata.schema.json
    ],
)
def test_the_validation_reaches_every_referenced_schema(hub_definition, breakage, expected):
    broken = copy.deepcopy(hub_definition)
    breakage(broken)
    assert any(expected in error for error in _errors(broken)), _errors(broken)


# -- agreement -------------------------------------------------------------------------------------------------------


def _tap_setting(about: dict, name: str) -> dict | None:
    """The JSON schema of a setting in --about; dotted names (batch_config.encoding.format) walk nested properties."""
    node: dict | None = {"properties": about["settings"]["properties"]}
    for part in name.split("."):
        node = (node or {}).get("properties", {}).get(part)
    return node


def _json_types(prop: dict) -> set[str]:
    types = prop.get("type")
    if types is None:  # oneOf / anyOf: the types of its members
        types = [t for member in prop.get("oneOf", prop.get("anyOf", [])) for t in _json_types(member)]
    return {types} if isinstance(types, str) else set(types) - {"null"}


def _check_against_tap(setting: dict, prop: dict | None) -> list[str]:
    name, kind = setting["name"], setting.get("kind", "string")
    if prop is None:
        return [f"{name}: not a setting of the tap"]
    problems = []
    types = _json_types(prop)
    if not any(kind in KINDS[t] for t in types):
        problems.append(f"{name}: kind {kind} does not fit the tap's type {sorted(types)}")
    # string is allowed too: Meltano's date_iso8601 parses loosely (01.02.2024 month-first), a string reaches the
    # tap's strict check unchanged (meltano.yml's start_date)
    if prop.get("format") == "date" and kind not in ("date_iso8601", "string"):
        problems.append(f"{name}: the tap wants a date, kind is {kind}")
    secret = bool(prop.get("secret"))
    if bool(setting.get("sensitive")) != secret or (kind == "password") != secret:
        problems.append(f"{name}: sensitive={setting.get('sensitive')} kind={kind} but tap secret={secret}")
    if "value" in setting and setting["value"] != prop.get("default"):
        problems.append(f"{name}: default {setting['value']!r} but the tap's is {prop.get('default')!r}")
    if kind == "options":
        unknown = {o["value"] for o in setting["options"]} - set(prop.get("enum", []))
        if unknown:
            problems.append(f"{name}: options {sorted(unknown)} the tap does not accept")
    return problems


def _undeclared_capability_settings(capabilities: list[str]) -> set[str]:
    return {s for cap, names in CAPABILITY_SETTINGS.items() if cap not in capabilities for s in names}


def test_every_hub_setting_is_a_tap_setting_of_the_same_kind_and_sensitivity(hub_definition, about):
    problems = [p for s in hub_definition["settings"] for p in _check_against_tap(s, _tap_setting(about, s["name"]))]
    assert problems == []


def test_the_hub_lists_every_tap_setting_of_the_declared_capabilities(hub_definition, about):
    listed = {s["name"].split(".")[0] for s in hub_definition["settings"]}
    expected = set(about["settings"]["properties"]) - _undeclared_capability_settings(hub_definition["capabilities"])
    assert sorted(expected - listed) == []
    assert sorted(listed - expected) == []


def test_every_meltano_yml_setting_is_a_tap_setting_of_the_same_kind_and_sensitivity(extractor, about):
    problems = [p for s in extractor["settings"] for p in _check_against_tap(s, _tap_setting(about, s["name"]))]
    assert problems == []


def test_meltano_yml_declares_every_setting_the_tap_itself_defines(extractor, about):
    """Own settings (not singer-sdk's capability settings) are all in meltano.yml, so `meltano config` knows them."""
    sdk_settings = set().union(*CAPABILITY_SETTINGS.values())
    own = set(about["settings"]["properties"]) - sdk_settings
    declared = {s["name"] for s in extractor["settings"]}
    assert sorted(own - declared) == []


def test_hub_and_meltano_yml_agree_on_shared_settings(hub_definition, extractor):
    hub = {s["name"]: s for s in hub_definition["settings"]}
    problems = []
    for setting in extractor["settings"]:
        name = setting["name"]
        same = hub.get(name)
        if same is None:
            children = [h for h in hub if h.startswith(name + ".")]
            if setting.get("kind") == "object" and children:
                continue  # meltano.yml's batch_config object = the Hub's batch_config.* settings
            if name in _undeclared_capability_settings(hub_definition["capabilities"]):
                continue  # settings of a capability neither file declares (see test_tap_capabilities.py)
            problems.append(f"{name}: in meltano.yml, not in the Hub file")
            continue
        for key in ("kind", "sensitive", "value"):
            if setting.get(key) != same.get(key):
                problems.append(f"{name}: {key} {setting.get(key)!r} in meltano.yml, {same.get(key)!r} in the Hub file")
    assert problems == []


def test_capabilities_agree(hub_definition, extractor, about):
    assert hub_definition["capabilities"] == extractor["capabilities"]
    assert set(extractor["capabilities"]) <= set(about["capabilities"])


def test_identity_and_packaging_agree(hub_definition, extractor, about):
    for key in ("name", "namespace", "executable", "label", "settings_group_validation"):
        assert hub_definition[key] == extractor[key], key
    assert hub_definition["supported_python_versions"] == about["supported_python_versions"]
    project = tomllib.loads((PROJECT_ROOT / "tap-invoiz" / "pyproject.toml").read_text())["project"]
    assert hub_definition["pip_url"] == project["name"]
    assert hub_definition["executable"] in project["scripts"]
    # what the tap requires is exactly what Meltano checks as a group before running it
    assert [sorted(about["settings"]["required"])] == [sorted(g) for g in hub_definition["settings_group_validation"]]


@pytest.mark.slow  # a `meltano add` in a fresh project
def test_meltano_adds_the_plugin_from_the_hub_file(hub_definition, tmp_path):
    """What `meltano add` does with a Hub definition: the file is read by Meltano itself (offline, no install)."""
    meltano = str(Path(sys.executable).parent / "meltano")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_INVOIZ_"))}
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"

    def run(*args: str, cwd: Path) -> str:
        proc = subprocess.run(
            [meltano, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    run("init", "proj", "--no-usage-stats", cwd=tmp_path)
    project = tmp_path / "proj"
    run("add", "--plugin-type", "extractor", "tap-invoiz", "--from-ref", str(HUB_FILE), "--no-install", cwd=project)
    added = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]["extractors"][0]
    assert added["variant"] == hub_definition["variant"]
    assert added["capabilities"] == hub_definition["capabilities"]
    assert [s["name"] for s in added["settings"]] == [s["name"] for s in hub_definition["settings"]]
    listing = run("config", "list", "tap-invoiz", "--all", cwd=project)
    for name in ("api_key", "api_key_secret", "installation_id", "max_concurrency", "batch_config.encoding.format"):
        assert name in listing
    assert "TAP_INVOIZ_API_KEY" in listing
