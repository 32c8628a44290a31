"""Documentation completeness of the dbt project in transform/ — runs without a database.

Every model, source table, seed and exposure needs a description, and so does every column listed for it. Because
the project enforces model contracts (dbt_project.yml: ``+contract: enforced: true``), the YAML column list of a
model must equal the columns its SQL returns — ``dbt build`` fails otherwise — so "every column in the YAML is
described" means every column of every model is described.

The manifest dbt writes is checked the same way in test_dbt_build.py (it needs dbt and a database).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2] / "transform"
DOC_REF = re.compile(r"""\{\{\s*doc\(\s*["']([^"']+)["']\s*\)\s*\}\}""")
DOC_BLOCK = re.compile(r"\{%-?\s*docs\s+([A-Za-z0-9_]+)\s*-?%\}(.*?)\{%-?\s*enddocs\s*-?%\}", re.S)


def _yaml_files():
    for folder in ("models", "seeds", "snapshots"):
        base = PROJECT / folder
        if base.is_dir():
            yield from sorted(p for p in base.rglob("*") if p.suffix in (".yml", ".yaml"))


def _doc_blocks() -> dict[str, str]:
    blocks: dict[str, str] = {}
    for md in PROJECT.rglob("*.md"):
        if "target" in md.parts or "dbt_packages" in md.parts:
            continue
        for name, body in DOC_BLOCK.findall(md.read_text(encoding="utf-8")):
            blocks[name] = body.strip()
    return blocks


def _properties():
    """(kind, name, mapping, file) for every model/seed/source table/exposure in the YAML files."""
    out = []
    for path in _yaml_files():
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for kind in ("models", "seeds", "snapshots", "exposures"):
            for entry in doc.get(kind) or []:
                out.append((kind[:-1], entry["name"], entry, path))
        for source in doc.get("sources") or []:
            out.append(("source", source["name"], source, path))
            for table in source.get("tables") or []:
                out.append(("source table", f"{source['name']}.{table['name']}", table, path))
    return out


def _is_described(text, blocks) -> bool:
    if not isinstance(text, str) or not text.strip():
        return False
    refs = DOC_REF.findall(text)
    return all(blocks.get(r) for r in refs)


def test_every_model_file_has_properties():
    model_files = {p.stem for p in (PROJECT / "models").rglob("*.sql")}
    assert model_files, "no models found"
    documented = {name for kind, name, _, _ in _properties() if kind == "model"}
    missing = sorted(model_files - documented)
    assert not missing, f"models without a YAML entry: {missing}"
    stale = sorted(documented - model_files)
    assert not stale, f"YAML entries without a model: {stale}"


def test_every_seed_has_properties():
    seeds = {p.stem for p in (PROJECT / "seeds").rglob("*.csv")}
    documented = {name for kind, name, _, _ in _properties() if kind == "seed"}
    assert seeds <= documented, f"seeds without a YAML entry: {sorted(seeds - documented)}"


def test_descriptions_complete():
    blocks = _doc_blocks()
    problems = []
    for kind, name, entry, path in _properties():
        rel = path.relative_to(PROJECT)
        if not _is_described(entry.get("description"), blocks):
            problems.append(f"{rel}: {kind} {name} has no description (or a doc() block that does not exist)")
        columns = entry.get("columns") or []
        if kind in ("model", "source table", "seed") and not columns:
            problems.append(f"{rel}: {kind} {name} lists no columns")
        for column in columns:
            if not _is_described(column.get("description"), blocks):
                problems.append(f"{rel}: {kind} {name}, column {column.get('name')} has no description")
    assert not problems, "\n".join(problems)


def test_contracts_enforced_so_yaml_columns_are_all_columns():
    project = yaml.safe_load((PROJECT / "dbt_project.yml").read_text(encoding="utf-8"))
    contract = project["models"][project["name"]].get("+contract", {})
    assert contract.get("enforced") is True, "model contracts must be enforced project-wide"
    for kind, name, entry, _path in _properties():
        if kind == "model":
            enforced = ((entry.get("config") or {}).get("contract") or {}).get("enforced", True)
            assert enforced, f"{name} disables its contract"
            for column in entry.get("columns") or []:
                assert column.get("data_type"), f"{name}.{column['name']} lacks data_type"


def test_overview_page_exists():
    blocks = _doc_blocks()
    assert blocks.get("__overview__"), "models/docs.md must define {% docs __overview__ %}"
