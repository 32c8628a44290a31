"""Writing the tap's Singer messages: the same bytes as singer-sdk's writer, written faster.

singer-sdk writes every message with ``simplejson.dumps(message.to_dict(), use_decimal=True, separators=(",", ":"),
ignore_nan=True, default=…)`` (ASCII only: every other character as ``\\uXXXX``) and flushes stdout after each one. In
a backfill that was a third of the tap's CPU. This writer

* encodes RECORD messages with msgspec (Decimal as a number, like ``use_decimal``), then escapes what is not ASCII
  exactly as simplejson does (``\\u00e4``, surrogate pairs above U+FFFF, and DEL as ``\\u007f``); a record holding
  something msgspec writes another way (a float or a date/time object among its columns) or cannot write (an
  integer beyond what msgspec handles, an unpaired surrogate) takes singer-sdk's own encoding;
* writes every other message (SCHEMA, STATE, …) with singer-sdk's encoding, unchanged;
* collects RECORD lines and writes them in blocks of about 64 KiB: before any other message, so a STATE message
  still follows the records it covers, and at the end of the sync (:meth:`flush`, called by the tap).

tests/tap/test_output_identical.py compares its lines with singer-sdk's for every message of sandbox syncs.
"""

from __future__ import annotations

import decimal
import functools
import re
import sys
import typing as t

import msgspec
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.encoding.simple import RecordMessage, SimpleSingerWriter

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

#: RECORD lines are written to stdout once they add up to this many characters (or before any other message).
BLOCK_CHARS = 64 * 1024

_ENCODER = msgspec.json.Encoder(decimal_format="number")
# Column types msgspec writes as singer-sdk does. Others take singer-sdk's encoding: floats (msgspec 1e16, simplejson
# 1e+16), date/time objects (msgspec "Z", singer-sdk "+00:00"), anything singer-sdk writes with str(). Nested values
# are decoded API JSON (dict, list, str, int, bool, None, Decimal; floats only from NaN/Infinity, null in both).
_SAME_TYPES = frozenset({str, int, bool, type(None), dict, list, decimal.Decimal})
_NOT_ASCII = re.compile("[\x7f-\U0010ffff]+")


@functools.lru_cache(maxsize=4096)
def _escape_char(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def _escape_run(match: re.Match[str]) -> str:
    return "".join(map(_escape_char, match.group()))


def ascii_json(text: str) -> str:
    """JSON text with every character outside ASCII, and DEL, written as simplejson's ``ensure_ascii`` writes it:
    ``\\u00e4``, a surrogate pair above U+FFFF, ``\\u007f``."""
    if not text.isascii():
        # Without a backslash in the text, every one after backslashreplace starts a replacement (\xe4, \u2028): the
        # fast way. Otherwise, or above U+FFFF (simplejson writes surrogate pairs), each character on its own.
        replaced = None if "\\" in text else text.encode("ascii", "backslashreplace").decode("ascii")
        if replaced is None or "\\U" in replaced:
            return _NOT_ASCII.sub(_escape_run, text)
        text = replaced.replace("\\x", "\\u00")
    return text.replace("\x7f", "\\u007f") if "\x7f" in text else text


@functools.lru_cache(maxsize=64)
def _record_prefix(stream: str) -> str:
    return '{"type":"RECORD","stream":' + _ENCODER.encode(stream).decode() + ',"record":'


def record_line(message: RecordMessage) -> str | None:
    """The RECORD message as singer-sdk writes it (without the newline), or None when only singer-sdk can write it."""
    record = message.record
    if not _SAME_TYPES.issuperset(map(type, record.values())):
        return None
    try:
        encoded = _ENCODER.encode(record)
    except (TypeError, ValueError):  # e.g. an unpaired surrogate, a non-finite Decimal
        return None
    # RecordMessage.to_dict() order: type, stream, record, version (if set), time_extracted (if set)
    line = _record_prefix(message.stream) + encoded.decode()
    version = message.version
    if version is not None:
        if type(version) is not int:
            return None
        line += f',"version":{version}'
    if message.time_extracted is not None:
        line += ',"time_extracted":"' + message.time_extracted.isoformat(sep="T") + '"'
    return ascii_json(line + "}")


class FastSingerWriter(SimpleSingerWriter):
    """singer-sdk's writer, with RECORD messages encoded by msgspec and written in blocks (see the module)."""

    def __init__(self) -> None:
        super().__init__()
        self._block: list[str] = []
        self._block_chars = 0

    def serialize_message(self, message: Message) -> str:
        if type(message) is RecordMessage:
            line = record_line(message)
            if line is not None:
                return line
        return super().serialize_message(message)

    def write_message(self, message: Message) -> None:
        line = self.format_message(message) + "\n"
        if type(message) is RecordMessage:
            self._block.append(line)
            self._block_chars += len(line)
            if self._block_chars >= BLOCK_CHARS:
                self.flush()
            return
        self._block.append(line)
        self.flush()

    def flush(self) -> None:
        """Write the collected lines to stdout and flush it."""
        if self._block:
            sys.stdout.write("".join(self._block))
            self._block = []
            self._block_chars = 0
        sys.stdout.flush()


class PassthroughDecision:
    """Whether a stream's RECORD message may skip singer-sdk's per-record walks because they cannot change the
    record: every property selected (nothing for ``pop_deselected_record_properties`` to remove), no conformance
    (``TYPE_CONFORMANCE_LEVEL``) and no stream map or flattening (the same record, under the stream's name).
    Decided once per selection mask and stream maps, which the SDK may replace."""

    def __init__(self) -> None:
        self._decided_for: tuple[object, object] | None = None
        self._applies = False

    def applies(self, stream: t.Any) -> bool:
        mask, maps = stream.mask, stream.stream_maps
        decided = self._decided_for
        if decided is None or decided[0] is not mask or decided[1] is not maps:
            self._decided_for = (mask, maps)
            self._applies = bool(
                stream.TYPE_CONFORMANCE_LEVEL == TypeConformanceLevel.NONE
                and mask[()]
                and all(mask.values())
                and len(maps) == 1
                and type(maps[0]) is SameRecordTransform
                and not maps[0].flattening_enabled
            )
        return self._applies

    def message(self, stream: t.Any, record: dict) -> RecordMessage:
        alias = stream.stream_maps[0].stream_alias
        return RecordMessage(stream=alias, record=record, version=stream._stream_version, time_extracted=utc_now())
