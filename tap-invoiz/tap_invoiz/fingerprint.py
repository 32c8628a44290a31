"""Row fingerprints and their compact encoding in the Singer state.

The invoiz API has no updated-since filter and no ``updatedAt`` field, so the tap lists every row on every run and
compares a short hash of each row ("fingerprint") with the one it saw last time. The state holds ``id → fingerprint``
for every tracked row of one stream and one account, encoded compactly:

* ids sorted ascending, stored as LEB128 varints of the gaps (ids are dense integers, so most gaps take one byte),
* followed by the fingerprints, :data:`FP_BYTES` bytes each, in the same order,
* the whole blob zlib-compressed (level 9) and base64-encoded, prefixed with the format name.

100,000 invoices take about 0.7 MB of state (measured in tests/tap/test_state.py and reported in README.md).
"""

from __future__ import annotations

import base64
import decimal
import hashlib
import json
import zlib
from collections.abc import Mapping

import msgspec

from tap_invoiz import responses

#: Bytes of the blake2b digest kept per row: 40 bits. The chance that a changed row keeps its fingerprint is 2^-40
#: per change; a full refresh (``meltano run --full-refresh``) re-sends everything anyway.
FP_BYTES = 5
FORMAT = "fp1"  # "fp1:" + base64(zlib(varint id gaps + FP_BYTES-byte fingerprints))


def _json_default(value: object) -> object:
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)


def canonical_json(value: object) -> str:
    """The row as JSON with sorted keys and no whitespace: equal rows give equal text. The definition of a
    fingerprint's input; :func:`canonical_bytes` writes the same text faster."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


# The same text as canonical_json for everything JSON decodes to (dict, list, str, int, bool, None, and Decimal, which
# msgspec writes as its str() in a JSON string, like _json_default), in UTF-8, about six times faster.
_CANONICAL = msgspec.json.Encoder(order="sorted")


def canonical_bytes(row: object) -> bytes:
    """``canonical_json(row).encode("utf-8")`` for a row as the tap decodes it (:mod:`tap_invoiz.responses`)."""
    if not responses.float_constants_seen:  # floats (from NaN/Infinity only) are written differently by msgspec
        try:
            return _CANONICAL.encode(row)
        except (TypeError, ValueError):
            pass  # e.g. an unpaired surrogate: the stdlib's text (and its error) below
    return canonical_json(row).encode("utf-8")


def fingerprint(row: Mapping, salt: str = "") -> int:
    """An integer of :data:`FP_BYTES` bytes hashing the row exactly as the API returned it (plus ``salt``)."""
    digest = hashlib.blake2b(salt.encode("utf-8") + b"\x00" + canonical_bytes(row), digest_size=FP_BYTES).digest()
    return int.from_bytes(digest, "big")


def write_ids(out: bytearray, ids: list[int]) -> None:
    """Ascending ids as their count and gaps, each a varint (also the ledger's ids before start_date)."""
    _write_varint(out, len(ids))
    previous = 0
    for row_id in ids:
        gap = row_id - previous
        if gap < 0x80:  # most gaps (dense ids): one byte, without the call
            out.append(gap)
        else:
            _write_varint(out, gap)
        previous = row_id


def read_ids(raw: bytes) -> tuple[list[int], int]:
    """Inverse of :func:`write_ids`: the ids and the position after them in ``raw``."""
    pos = 0

    def read_varint() -> int:
        nonlocal pos
        shift = value = 0
        while True:
            byte = raw[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    ids = []
    current = 0
    for _ in range(read_varint()):
        current += read_varint()
        ids.append(current)
    return ids, pos


def _write_varint(out: bytearray, value: int) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def encode(fingerprints: Mapping[int, int]) -> str:
    """Encode ``{id: fingerprint}`` (non-negative integer ids) as a compact ASCII string."""
    ids = sorted(fingerprints)
    if ids and ids[0] < 0:
        msg = "ids must be non-negative integers"
        raise ValueError(msg)
    out = bytearray()
    write_ids(out, ids)
    out += b"".join([fingerprints[row_id].to_bytes(FP_BYTES, "big") for row_id in ids])
    return f"{FORMAT}:" + base64.b64encode(zlib.compress(bytes(out), 9)).decode("ascii")


def decode(text: str | None) -> dict[int, int]:
    """Inverse of :func:`encode`. Raises ValueError on a blob this version cannot read."""
    if not text:
        return {}
    prefix, _, payload = text.partition(":")
    if prefix != FORMAT:
        msg = f"unknown fingerprint format {prefix!r}"
        raise ValueError(msg)
    raw = zlib.decompress(base64.b64decode(payload))
    ids, pos = read_ids(raw)
    count = len(ids)
    if len(raw) - pos != count * FP_BYTES:
        msg = "corrupt fingerprint blob (length mismatch)"
        raise ValueError(msg)
    result = {}
    for row_id in ids:
        result[row_id] = int.from_bytes(raw[pos : pos + FP_BYTES], "big")
        pos += FP_BYTES
    return result
