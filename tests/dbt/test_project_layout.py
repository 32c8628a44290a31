"""Layout and YAML style of the dbt project in transform/ — runs without a database or dbt.

Layout: every model ``<name>.sql`` has its properties in ``<name>.yml`` beside it (that model only, plus the unit
tests of that model); the sources stay in ``models/staging/src_invoiz.yml``, the exposures in
``models/marts/exposures.yml``; a seed ``<name>.csv`` has ``<name>.yml`` beside it.

Style, for every YAML file of the project (dbt_project.yml, profiles, sources, models, seeds, singular tests):
block style with 2-space indentation, a sequence indented under its key; ``data_tests:`` (not ``tests:``); quotes
only where YAML needs them, single quotes unless the text holds a single quote; text longer than a line as a
folded block (``>``), or a literal block (``|``) when it has paragraphs; lines up to 120 characters. The one
exception: unit-test rows are one flow mapping per line (``- {id: 1, ...}``), so that they read as a table.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2] / "transform"
MAX_LINE = 120
SKIP_DIRS = {"target", "dbt_packages", "logs"}

KEY_ONLY = re.compile(r"^(?P<indent> *)(?P<dash>- )?(?P<key>[\w.+-]+):(?P<block> [>|][-+]?)?$")
QUOTED_VALUE = re.compile(r"^ *(?:- )?(?:[\w.+-]+: )?(?P<q>['\"])(?P<body>.*)(?P=q)$")
FLOW_ROW = re.compile(r"^ *- \{.*\}$")


def _yaml_files() -> list[Path]:
    return sorted(p for p in PROJECT.rglob("*.yml") if not SKIP_DIRS & set(p.relative_to(PROJECT).parts))


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def test_every_model_has_its_own_yaml_beside_its_sql():
    problems = []
    models = sorted((PROJECT / "models").rglob("*.sql"))
    assert models, "no models found"
    for sql in models:
        properties = sql.with_suffix(".yml")
        if not properties.exists():
            problems.append(f"{sql.relative_to(PROJECT)} has no {properties.name} beside it")
            continue
        names = [m["name"] for m in _load(properties).get("models") or []]
        if names != [sql.stem]:
            problems.append(f"{properties.relative_to(PROJECT)} describes {names}, not just {sql.stem}")
    assert not problems, "\n".join(problems)


def test_unit_tests_live_in_the_yaml_of_their_model():
    problems = []
    count = 0
    for path in _yaml_files():
        for unit_test in _load(path).get("unit_tests") or []:
            count += 1
            if PROJECT / "models" not in path.parents:
                problems.append(f"{path.relative_to(PROJECT)}: unit test {unit_test['name']} outside models/")
            elif path.stem != unit_test["model"]:
                problems.append(
                    f"{path.relative_to(PROJECT)}: unit test {unit_test['name']} tests "
                    f"{unit_test['model']}; it belongs in {unit_test['model']}.yml"
                )
    assert count, "no unit tests found"
    assert not problems, "\n".join(problems)


def test_other_yaml_files_in_models_are_sources_and_exposures():
    expected = {PROJECT / "models" / "staging" / "src_invoiz.yml", PROJECT / "models" / "marts" / "exposures.yml"}
    others = {p for p in (PROJECT / "models").rglob("*.yml") if not p.with_suffix(".sql").exists()}
    assert others == expected
    sources = _load(PROJECT / "models" / "staging" / "src_invoiz.yml")
    assert set(sources) == {"version", "sources"}
    assert set(_load(PROJECT / "models" / "marts" / "exposures.yml")) == {"version", "exposures"}


def test_every_seed_has_its_own_yaml_beside_its_csv():
    for csv in sorted((PROJECT / "seeds").rglob("*.csv")):
        properties = csv.with_suffix(".yml")
        assert properties.exists(), f"{csv.relative_to(PROJECT)} has no {properties.name} beside it"
        assert [s["name"] for s in _load(properties).get("seeds") or []] == [csv.stem]


def _style_problems(path: Path, root: Path = PROJECT) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    rel = path.relative_to(root)
    problems = []
    block_scalar_until = -1  # inside a > or | block: its lines are text, not YAML structure
    for i, line in enumerate(lines):
        where = f"{rel}:{i + 1}"
        if "\t" in line:
            problems.append(f"{where}: tab")
        if line != line.rstrip():
            problems.append(f"{where}: trailing whitespace")
        if len(line) > MAX_LINE and not FLOW_ROW.match(line):
            problems.append(f"{where}: longer than {MAX_LINE} characters")
        if i <= block_scalar_until or not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^ *(- )?tests:", line):
            problems.append(f"{where}: `tests:` — dbt calls them `data_tests:`")
        if re.search(r": [\[{](?![\]}]$)", line) or (line.lstrip().startswith("- [")):
            problems.append(f"{where}: flow style (only unit-test rows are written as `- {{...}}`)")
        if FLOW_ROW.match(line) and not _inside_rows(lines, i):
            problems.append(f"{where}: flow mapping outside unit-test rows")
        match = KEY_ONLY.match(line)
        if match:
            column = len(match["indent"]) + (2 if match["dash"] else 0)
            following = next(
                (j for j in range(i + 1, len(lines)) if lines[j].strip() and not lines[j].lstrip().startswith("#")),
                None,
            )
            if following is not None and not match["block"]:
                indent = len(lines[following]) - len(lines[following].lstrip())
                deeper = indent > column
                if deeper and indent != column + 2:
                    problems.append(f"{where}: the content of `{match['key']}` is not indented by 2")
                elif not deeper and lines[following].lstrip().startswith("- "):
                    problems.append(f"{where}: the sequence under `{match['key']}` is not indented")
            if match["block"] and following is not None:
                indent = len(lines[following]) - len(lines[following].lstrip())
                if indent != column + 2:
                    problems.append(f"{where}: the text of `{match['key']}` is not indented by 2")
                block_scalar_until = following
                while block_scalar_until + 1 < len(lines) and (
                    not lines[block_scalar_until + 1].strip()
                    or len(lines[block_scalar_until + 1]) - len(lines[block_scalar_until + 1].lstrip()) >= indent
                ):
                    block_scalar_until += 1
            continue
        quoted = QUOTED_VALUE.match(line)
        if quoted:
            text = yaml.safe_load(f"k: {quoted['q']}{quoted['body']}{quoted['q']}")["k"]
            if _plain_ok(text):
                problems.append(f"{where}: quotes not needed")
            elif quoted["q"] == '"' and "'" not in text:
                problems.append(f"{where}: double quotes where single quotes do")
    return problems


def _plain_ok(text: str) -> bool:
    if not text or text != text.strip():
        return False
    try:
        return yaml.safe_load(f"k: {text}") == {"k": text}
    except yaml.YAMLError:
        return False


def _inside_rows(lines: list[str], i: int) -> bool:
    """Whether line i is an item of a `rows:` sequence (unit-test data)."""
    indent = len(lines[i]) - len(lines[i].lstrip())
    for j in range(i - 1, -1, -1):
        stripped = lines[j].strip()
        if not stripped:
            continue
        own = len(lines[j]) - len(lines[j].lstrip())
        if own < indent:
            return stripped in ("rows:", "- rows:")
    return False


def test_one_yaml_style():
    files = _yaml_files()
    assert PROJECT / "dbt_project.yml" in files and len(files) > 10
    problems = [p for path in files for p in _style_problems(path)]
    assert not problems, "\n".join(problems)


def test_property_files_start_with_version_2():
    for path in _yaml_files():
        if path.parent == PROJECT or "profiles" in path.relative_to(PROJECT).parts:
            continue
        assert path.read_text(encoding="utf-8").startswith("version: 2\n\n"), path.relative_to(PROJECT)


def test_the_style_check_finds_what_it_should(tmp_path):
    """The style check itself, on a small file with one fault per line kind."""
    text = "\n".join(
        [
            "version: 2",
            "",
            "models:",
            "- name: probe",  # sequence not indented under its key
            "  description: 'quoted for nothing'",  # needless quotes
            "  columns:",
            "    - {name: id, description: x}",  # flow mapping outside rows
            "  tests:",  # tests: instead of data_tests:
            "    - unique",
            "  config: {materialized: view}",  # flow style
            "  meta:",
            '     owner: "someone"',  # indented by 3, needless double quotes
            "",
        ]
    )
    probe = tmp_path / "transform" / "models" / "_style_probe.yml"
    probe.parent.mkdir(parents=True)
    probe.write_text(text, encoding="utf-8")
    problems = "\n".join(_style_problems(probe, root=tmp_path))
    for expected in (
        "sequence under `models` is not indented",
        "quotes not needed",
        "flow mapping outside",
        "`tests:`",
        "flow style",
        "content of `meta` is not indented by 2",
    ):
        assert expected in problems, (expected, problems)


def test_no_usage_events_leave_the_machine():
    """Neither Meltano nor dbt sends anonymous usage events: a scheduled job talks to invoiz and PostgreSQL only
    (and the tests, which run both, send nothing beyond loopback)."""
    assert _load(PROJECT / "dbt_project.yml")["flags"]["send_anonymous_usage_stats"] is False
    assert _load(PROJECT.parent / "meltano.yml")["send_anonymous_usage_stats"] is False
