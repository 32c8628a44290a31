"""The tap's fast paths (tap_invoiz.responses, .fingerprint, .records, .singer_writer, the record hook in .client)
write exactly what the plain implementations write.

The main check runs the console script (real stdout, the tap's own writer) for a backfill, a run after changes and a
run without changes against a seeded sandbox with awkward rows, and the same three runs in this process on the plain
path: the stdlib decoder, ``canonical_json``, the mapper as it was before its fast paths (:class:`PlainMapper` below),
singer-sdk's ``_generate_record_messages`` and singer-sdk's writer. The two outputs must be the same bytes, line by
line, after masking what differs between two runs (wall-clock times, run ids). Records, fingerprints (STATE messages
carry them) and the listing decisions all go through it. The other tests compare each fast function with its plain
counterpart on edge values.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
import re

import pytest
import simplejson
from singer_sdk import Stream
from singer_sdk.singerlib.encoding.simple import RecordMessage, SchemaMessage, SimpleSingerWriter, StateMessage
from tap_helpers import catalog_for, run_cli, sandbox_config

from tap_invoiz import fingerprint, records, responses
from tap_invoiz.client import InvoizStream
from tap_invoiz.records import Unconvertible
from tap_invoiz.singer_writer import FastSingerWriter, ascii_json
from tap_invoiz.tap import TapInvoiz

# wall-clock times the tap stamps (time_extracted, _sdc_deleted_at, sync_status, state bookkeeping) and run ids
_RUN_SPECIFIC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00|[0-9a-f]{32}")


def masked(lines: list[str]) -> list[str]:
    return [_RUN_SPECIFIC.sub("<run-specific>", line) for line in lines]


# -- the plain path ---------------------------------------------------------------------------------------------------


class PlainMapper(records.RecordMapper):
    """RecordMapper.map as written before its fast paths: the reference the fast mapper must equal."""

    def map(self, raw):
        nul_at = records.find_nul(raw)
        if nul_at is not None:
            raise records.RejectedRow(
                self.stream_name,
                raw.get("id"),
                nul_at,
                "contains a NUL character (U+0000), which PostgreSQL cannot store",
            )
        record, extra = {}, {}
        for api, column, kind in self.fields:
            value = raw.get(api)
            if value is None:
                record[column] = None
                continue
            if kind == "string" and value == "" and column == "number":
                record[column] = None
                continue
            try:
                converted = plain_convert(kind, value)
            except Unconvertible:
                converted = None
                extra[api] = value
                self._warn_bad(api, kind, value, converted=False)
            else:
                if type(converted) is not type(value) and kind not in ("date", "date-time"):
                    extra[api] = value
                    self._warn_bad(api, kind, value, converted=True)
            record[column] = converted
        unknown = [name for name in raw if name not in self.known]
        for name in unknown:
            extra[name] = raw[name]
        new_names = sorted(set(unknown) - self._logged_unknown)
        if new_names:
            self._logged_unknown.update(new_names)
            self.logger.info(
                "%s: API fields not in the schema, kept verbatim in extra_fields: %s",
                self.stream_name,
                ", ".join(new_names),
            )
        return record, extra


def plain_convert(kind: str, value: object) -> object:
    """The converters without their caches (the date kinds parsed every time)."""
    if kind in ("date", "date-time"):
        if not isinstance(value, str) or not value.strip():
            raise Unconvertible
        parsed = records.parse_iso(value)
        if kind == "date-time":
            return value.strip() if isinstance(parsed, dt.datetime) else f"{parsed.isoformat()}T00:00:00+00:00"
        if isinstance(parsed, dt.datetime) and parsed.tzinfo is not None:
            parsed = parsed.astimezone(records.BERLIN)
        return (parsed.date() if isinstance(parsed, dt.datetime) else parsed).isoformat()
    return records.CONVERTERS[kind](value)


def plain_decode(text: str):
    return json.loads(text, parse_float=decimal.Decimal)


class _PlainWriter(SimpleSingerWriter):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def write_message(self, message) -> None:
        self.lines.append(self.format_message(message))


def run_plain(monkeypatch, config: dict, state: dict | None, catalog: dict) -> list[str]:
    """One sync in this process on the plain path; its Singer lines."""
    with monkeypatch.context() as patch:
        patch.setattr(responses, "decode_json", plain_decode)
        patch.setattr(fingerprint, "canonical_bytes", lambda row: fingerprint.canonical_json(row).encode("utf-8"))
        patch.setattr(records.RecordMapper, "map", PlainMapper.map)
        patch.setattr(InvoizStream, "_generate_record_messages", Stream._generate_record_messages)
        writer = _PlainWriter()
        tap = TapInvoiz(config=config, state=copy.deepcopy(state), catalog=catalog, message_writer=writer)
        tap.sync_all()
    return writer.lines


def awkward_rows(sb) -> None:
    """Rows that take the fast paths' detours: text outside ASCII (also above U+FFFF), DEL, quotes and backslashes,
    a number with an exponent, an integer beyond 64 bits, a value of the wrong type, an unknown field, a NUL."""
    invoices, contacts = sb.invoice_ids(), sb.contact_ids()
    sb.set_raw_fields(
        "invoice", invoices[1], {"title": 'Zäh "quoted" \\ back\x7fslash 😀 \u2028', "newField": [1e16, 2**70]}
    )
    sb.set_raw_fields("invoice", invoices[2], {"totalGross": "1.234,56", "priceKind": 7, "outstandingAmount": 12.5})
    sb.set_raw_fields("invoice", invoices[3], {"title": "NUL \x00 here"})
    sb.set_raw_fields("contact", contacts[1], {"name": "Ößmann 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "notes": "tab\there"})


def change_something(sb) -> None:
    ids = sb.invoice_ids()
    open_ids = [i for i in ids if sb.invoice(i)["state"] in ("locked", "dunned")]
    draft = next(i for i in ids if sb.invoice(i)["state"] == "draft")
    sb.pay(open_ids[0])
    sb.create_invoice(customer_id=sb.contact_ids()[0], title="Neu – Änderung")
    sb.delete_invoice(draft)
    sb.update_contact(sb.contact_ids()[2], name="Geändert GmbH")


@pytest.mark.invoiz_sandbox(invoices=400, contacts=80)
def test_the_console_script_writes_what_the_plain_path_writes(invoiz_sandbox, tmp_path, monkeypatch):
    sb = invoiz_sandbox
    awkward_rows(sb)
    config = sandbox_config(sb, page_size=50, max_concurrency=2)
    catalog = catalog_for(config, payments=True)
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    state = None
    outputs = {}
    for step in ("backfill", "after changes", "no change"):
        if step == "after changes":
            change_something(sb)
        fast = run_cli(config, state, tmp_path, args=("--catalog", str(tmp_path / "catalog.json")))
        assert fast.returncode == 0, fast.stderr[-2000:]
        plain = run_plain(monkeypatch, config, state, catalog)
        fast_lines = fast.stdout.splitlines()
        assert masked(fast_lines) == masked(plain), step
        kinds = {m["type"] for m in fast.messages}
        assert "STATE" in kinds
        if step != "no change":
            assert any(m["type"] == "RECORD" and m["stream"] == "invoices" for m in fast.messages), step
        state = fast.state
        outputs[step] = fast
    # The awkward rows went through the backfill: escaped text, the exponent, the big integer, the NUL row rejected.
    backfill = outputs["backfill"]
    text = backfill.stdout
    for written in ("\\u00e4", "\\ud83d\\ude00", "\\u007f", "\\u2028", '\\"quoted\\"', "1E+16", str(2**70), "12.5"):
        assert written in text, written
    invoices = sb.invoice_ids()
    assert invoices[3] not in backfill.ids("invoices")
    assert f"row id {invoices[3]} not loaded: field title contains a NUL" in backfill.stderr
    assert outputs["no change"].records("invoices") == []


# -- each fast function against its plain counterpart ---------------------------------------------------------------


def typed(value):
    """A value with every type spelled out: 1, 1.0 and Decimal("1.0") compare equal in Python, not here."""
    if isinstance(value, dict):
        return {"dict": [(typed(k), typed(v)) for k, v in value.items()]}
    if isinstance(value, list):
        return {"list": [typed(v) for v in value]}
    return (type(value).__name__, repr(value))


JSON_TEXTS = [
    '{"data":[{"id":1,"a":1.50,"b":1E5,"c":-0.0,"d":123456789012345678901234567890,"e":"\\u00e4\\ud83d\\ude00"}]}',
    '{"a":1,"b":3,"a":2}',
    '{"a":"\\u0000","\\u00e4":"\\u00C4","n":null,"t":true,"f":false,"x":[]}',
    '{"a":1e999,"b":-1e-999,"c":0.000001,"d":18446744073709551616,"e":-9223372036854775809}',
    '{"a":NaN,"b":Infinity,"c":-Infinity}',
    '{"a":"\\ud800 unpaired"}',
]


@pytest.mark.parametrize("text", JSON_TEXTS)
def test_decoding_builds_the_same_objects_as_the_stdlib(text, monkeypatch):
    monkeypatch.setattr(responses, "float_constants_seen", False)
    assert typed(responses.decode_json(text)) == typed(json.loads(text, parse_float=decimal.Decimal))
    assert responses.float_constants_seen == ("NaN" in text)


@pytest.mark.parametrize("text", ["", "{", '{"a":1}x', "[1,2,]", '{"a":01}', '{"a":"x\ty"}', "\ufeff{}"])
def test_text_that_is_no_json_raises_value_error_as_before(text):
    with pytest.raises(ValueError):
        json.loads(text, parse_float=decimal.Decimal)
    with pytest.raises(ValueError):
        responses.decode_json(text)


ROWS = [
    {"b": [1, {"z": decimal.Decimal("1.50"), "a": "ä\x00\x7f"}], "a": None, "ü": True, "A": False},
    {"id": 2**70, "x": decimal.Decimal("1E+5"), "y": decimal.Decimal("-0.0"), "s": 'q"\\/\n\t😀\u2028'},
    {"nested": {"deep": {"deeper": [[], {}, "", 0]}}, "Z": "z", "a": "a"},
]


@pytest.mark.parametrize("row", ROWS)
def test_canonical_bytes_are_canonical_json(row, monkeypatch):
    monkeypatch.setattr(responses, "float_constants_seen", False)
    assert fingerprint.canonical_bytes(row) == fingerprint.canonical_json(row).encode("utf-8")


def test_after_nan_in_an_answer_fingerprints_take_the_stdlib_encoding(monkeypatch):
    monkeypatch.setattr(responses, "float_constants_seen", False)
    row = responses.decode_json('{"a":NaN,"b":[Infinity]}')
    assert fingerprint.canonical_bytes(row) == b'{"a":NaN,"b":[Infinity]}' == fingerprint.canonical_json(row).encode()


def test_an_unpaired_surrogate_fails_the_fingerprint_as_before():
    with pytest.raises(UnicodeEncodeError):
        fingerprint.canonical_json({"a": "\ud800"}).encode("utf-8")
    with pytest.raises(UnicodeEncodeError):
        fingerprint.canonical_bytes({"a": "\ud800"})


@pytest.mark.slow  # 1.1 million code points, three ways
def test_ascii_escaping_is_simplejsons_for_every_code_point():
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for prefix in ("", "\\", '"'):  # the fast way (no backslash in the text) and the one character at a time
        for start in range(0, len(chars), 20_000):
            text = prefix + "".join(chars[start : start + 20_000])
            fast = ascii_json(json.dumps({"k": text, text[:50]: [text]}, ensure_ascii=False, separators=(",", ":")))
            assert fast == simplejson.dumps({"k": text, text[:50]: [text]}, separators=(",", ":")), start


NOW = dt.datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=dt.timezone.utc)
RECORDS = [
    *ROWS,
    {"id": 1, "amount": decimal.Decimal("1E+16"), "n": decimal.Decimal("NaN"), "s": "ä"},  # SDK's way (NaN)
    {"id": 1, "f": 1e16, "g": float("nan")},  # floats: singer-sdk's way
    {"id": 1, "at": NOW, "on": NOW.date()},  # date/time objects: singer-sdk's way
    {"id": 1, "s": "\ud800"},  # unpaired surrogate: singer-sdk's way
    {"id": 1, "nested": {"f": float("inf"), "g": float("nan")}},  # NaN/Infinity from an answer: null, as simplejson
]


@pytest.mark.parametrize("record", RECORDS)
@pytest.mark.parametrize("version", [None, 1730000000000])
@pytest.mark.parametrize("extracted", [None, NOW, NOW.replace(microsecond=0)])
def test_record_lines_are_singer_sdks(record, version, extracted):
    message = RecordMessage(stream="invoices", record=record, version=version, time_extracted=extracted)
    assert FastSingerWriter().format_message(message) == SimpleSingerWriter().format_message(message)


def test_other_messages_are_written_by_singer_sdk():
    for message in (
        SchemaMessage(
            stream="invoices", schema={"type": "object", "properties": {"ä": {"type": "string"}}}, key_properties=["id"]
        ),
        StateMessage(value={"bookmarks": {"invoices": {"x": "ä"}}}),
    ):
        assert FastSingerWriter().format_message(message) == SimpleSingerWriter().format_message(message)


def test_records_wait_in_a_block_until_another_message_or_the_end(capsys, monkeypatch):
    import tap_invoiz.singer_writer as module

    record = RecordMessage(stream="s", record={"id": 1, "t": "x" * 40})
    line_chars = len(FastSingerWriter().format_message(record)) + 1
    monkeypatch.setattr(module, "BLOCK_CHARS", 3 * line_chars)
    writer = FastSingerWriter()
    writer.write_message(record)
    writer.write_message(record)
    assert capsys.readouterr().out == ""  # held
    writer.write_message(record)  # a block's worth: written
    assert capsys.readouterr().out.count("\n") == 3
    writer.write_message(record)
    writer.write_message(StateMessage(value={"a": 1}))  # the record first, then the state
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["type"] for line in out] == ["RECORD", "STATE"]
    writer.write_message(record)
    writer.flush()
    assert capsys.readouterr().out.count("\n") == 1


@pytest.mark.parametrize(
    "row",
    [
        {"id": 1, "t": "no nul"},
        {"id": 1, "t": "a\x00b"},
        {"id": 1, "k\x00ey": "v"},
        {"id": 1, "deep": {"list": [{}, {"x": ["", "\x00"]}]}},
        {"id": 1, "t": "\\u0000 is a backslash and text, no NUL"},
        {"id": 1, "t": "\ud800", "u": "\x00"},
    ],
)
def test_the_nul_check_finds_what_find_nul_finds(row):
    found = records.find_nul(row)
    assert records.may_contain_nul(row) or found is None
    mapper = records.RecordMapper("invoices", [("id", "id", "integer"), ("t", "title", "string")], _quiet_logger())
    if found is None:
        mapper.map(row)
    else:
        with pytest.raises(records.RejectedRow) as info:
            mapper.map(row)
        assert info.value.field == found


def _quiet_logger():
    import logging

    logger = logging.getLogger("tests.output_identical")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


MAPPER_VALUES = [
    "42.10",
    " 7 ",
    "1.234,56",
    True,
    7,
    decimal.Decimal("7.0"),
    decimal.Decimal("1E+2"),
    1.5,
    "",
    "   ",
    {"a": 1},
    [1],
    "2026-07-14T22:00:00.000Z",
    "2026-07-14",
    "2026-07-14T10:00:00",
    "14.07.2026",
    None,
]


@pytest.mark.parametrize("kind", sorted(records.CONVERTERS))
def test_the_mapper_converts_every_value_as_the_plain_mapper(kind):
    fields = [("id", "id", "integer"), ("v", "number", kind), ("w", "value", kind)]
    fast = records.RecordMapper("s", fields, _quiet_logger())
    plain = records.RecordMapper("s", fields, _quiet_logger())
    for value in MAPPER_VALUES:
        for _ in range(2):  # the second time from the date caches
            row = {"id": 1, "v": value, "w": value, "other": value}
            assert typed(fast.map(row)) == typed(PlainMapper.map(plain, row)), (kind, value)
