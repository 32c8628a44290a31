"""The tap's columns are declared everywhere they must be, so a field added to the tap cannot be forgotten:

* the dbt source ``invoiz`` (transform/models/staging/src_invoiz.yml) lists exactly the columns the streams send
  (and a column dropped from the tap cannot linger there);
* each data stream's staging model (transform/models/staging/stg_invoiz__<stream>.sql) reads every column;
* docs/DESIGN.md's column contract names every column.

Singer metadata columns (``_sdc_*``) are left aside: target-postgres adds its own. Runs without a database or dbt.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tap_invoiz import schemas, streams

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "transform" / "models"
DESIGN = ROOT / "docs" / "DESIGN.md"
#: Streams of API rows (sync_status is the tap's report: its staging model picks what monitoring needs).
DATA_STREAMS = ("invoices", "contacts", "invoice_payments")


def tap_schemas() -> dict[str, dict]:
    """Stream name → JSON schema, for every stream class of tap_invoiz.streams."""
    found = {}
    for value in vars(streams).values():
        if isinstance(value, type) and isinstance(getattr(value, "name", None), str) and "schema" in vars(value):
            found[value.name] = value.schema
    return found


def source_tables() -> dict[str, list[str]]:
    """Table name → column names of the dbt source ``invoiz``, wherever under transform/models it is declared."""
    tables: dict[str, list[str]] = {}
    for path in sorted(MODELS.rglob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for source in doc.get("sources") or []:
            if source.get("name") == "invoiz":
                for table in source.get("tables") or []:
                    tables[table["name"]] = [c["name"] for c in table.get("columns") or []]
    return tables


def data_columns(names) -> set[str]:
    return {n for n in names if not n.startswith("_sdc_")}


def test_every_stream_is_a_source_table_and_back():
    assert set(tap_schemas()) == set(source_tables()), "tap streams vs tables of the dbt source invoiz"


@pytest.mark.parametrize("stream", sorted(tap_schemas()))
def test_source_columns_equal_the_stream_schema(stream):
    tap = data_columns(tap_schemas()[stream]["properties"])
    dbt = data_columns(source_tables().get(stream, []))
    assert not tap - dbt, f"{stream}: sent by the tap, missing in src_invoiz.yml: {sorted(tap - dbt)}"
    assert not dbt - tap, f"{stream}: in src_invoiz.yml, not sent by the tap: {sorted(dbt - tap)}"


@pytest.mark.parametrize("stream", DATA_STREAMS)
def test_staging_reads_every_column(stream):
    sql = (MODELS / "staging" / f"stg_invoiz__{stream}.sql").read_text(encoding="utf-8")
    missing = sorted(c for c in data_columns(tap_schemas()[stream]["properties"]) if not re.search(rf"\b{c}\b", sql))
    assert not missing, f"stg_invoiz__{stream}.sql does not read {missing}"


@pytest.mark.parametrize("stream", sorted(tap_schemas()))
def test_the_design_column_contract_names_every_column(stream):
    text = DESIGN.read_text(encoding="utf-8")
    # the stream's paragraph or table: from "`<stream>` —" to the next stream's or the next heading
    section = re.search(rf"^`{stream}` —(.*?)(?=^`\w+` —|^#)", text, re.S | re.M)
    assert section, f"docs/DESIGN.md has no paragraph starting with `{stream}` —"
    named = {word for quoted in re.findall(r"`([^`]+)`", section.group(1)) for word in re.split(r"[,\s]+", quoted)}
    missing = sorted(data_columns(tap_schemas()[stream]["properties"]) - named)
    assert not missing, f"docs/DESIGN.md, columns of `{stream}`: {missing} not named"


def test_the_check_sees_a_missing_column():
    fields = [*schemas.CONTACT_FIELDS, schemas.Field("birthday", "birthday", "date", "Birthday")]
    schema = schemas._schema([], fields, [])
    assert "birthday" in data_columns(schema["properties"]) - data_columns(source_tables()["contacts"])
