"""The ledger: what the state remembers of one stream and one account, read at the start of a run and written back.

Per account entry (``stream_state["accounts"][account]``):

* ``fingerprints`` — ``id → fingerprint`` of every row emitted so far (:mod:`tap_invoiz.fingerprint`). Updated only for
  rows that were emitted; STATE messages follow the records they cover, so a run killed halfway loses nothing.
* the installation and full-refresh markers (:class:`tap_invoiz.account_state.AccountEntry`);
* invoices only, for listing by state (:mod:`tap_invoiz.listing`): ``states`` (one byte per tracked id), ``counts``
  (the last answer's ``meta.filter``), ``runs`` (the audit's run counter) and, with ``start_date``, ``start_date`` and
  ``outside`` (the ids and states of the invoices dated before it: never emitted, but counted by invoiz).

The ledger holds no reference to a stream: the stream hands it the state's ``accounts`` mapping to read and write.
"""

from __future__ import annotations

import base64
import binascii
import typing as t
import zlib
from collections import Counter

from singer_sdk.exceptions import FatalAPIError

from tap_invoiz import fingerprint as fpmod
from tap_invoiz.account_state import AccountEntry
from tap_invoiz.records import Unconvertible, to_integer

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, MutableMapping

#: Invoice states in the order of their one-byte codes (code 0: anything else, never tracked incrementally).
STATES = ("draft", "locked", "partiallyPaid", "paid", "dunned", "cancelled")
CODE = {name: code for code, name in enumerate(STATES, start=1)}
COUNT_KEYS = ("all", *STATES)
STATES_FORMAT = "st1"  # "st1:" + base64(zlib(one byte per id, ids in ascending order like the fingerprints))
OUTSIDE_FORMAT = "ot1"  # "ot1:" + base64(zlib(varint count, varint id gaps, one state byte per id))


def state_code(raw: dict) -> int:
    state = raw.get("state")
    return CODE.get(state, 0) if isinstance(state, str) else 0


def parse_counts(meta: object) -> dict[str, int] | None:
    """``meta.filter`` as ``{all, draft, …, cancelled: int}``, or None unless present, integer and consistent."""
    flt = meta.get("filter") if isinstance(meta, dict) else None
    if not isinstance(flt, dict):
        return None
    counts = {}
    for key in COUNT_KEYS:
        entry = flt.get(key)
        value = entry.get("count") if isinstance(entry, dict) else None
        if isinstance(value, bool) or value is None:
            return None
        try:
            counts[key] = to_integer(value)
        except Unconvertible:
            return None
        if counts[key] < 0:
            return None
    if sum(counts[s] for s in STATES) != counts["all"]:
        return None
    return counts


def row_id(raw: dict, stream: str, path: str) -> int:
    """The integer id of a row; a row without one stops the run (its key could not be loaded)."""
    try:
        return to_integer(raw.get("id"))
    except Unconvertible:
        msg = f"{stream}: a row from {path} has no integer id (got a JSON {type(raw.get('id')).__name__})"
        raise FatalAPIError(msg) from None


class Ledger:
    """One stream's and one account's fingerprints, full-refresh markers and (invoices) per-id states.

    ``codes`` holds the state code of every invoice the ledger knows (tracked ones and, with ``start_date``, the
    ones dated before it, :attr:`outside`); None for streams without states. ``tally`` counts ``codes`` by state.
    """

    def __init__(
        self,
        accounts: MutableMapping,
        account: str,
        *,
        run_id: str,
        started_at: str,
        logger: logging.Logger,
        stream: str,
        with_states: bool = False,
        start_date: str | None = None,
    ) -> None:
        self.account = account
        self.start_date = start_date
        found = accounts.get(account)
        self.fingerprints, self.had_prior_state = self._read_fingerprints(found, logger, stream, account)
        self.entry = AccountEntry(found, run_id, started_at, had_prior_state=self.had_prior_state)
        self.started_at = started_at
        self.codes: dict[int, int] | None = None
        self.codes_loaded = False  # per-id states were in the state and fit the fingerprints
        self.outside: set[int] = set()
        # the invoices before start_date are known for the start_date this run has (none without one)
        self.same_start_date = (found.get("start_date") if isinstance(found, dict) else None) == (start_date or None)
        self.runs = 0
        self.counts: dict[str, int] | None = None  # meta.filter of the last list answer of a full listing
        self.previous_counts: dict[str, int] | None = None  # as the last run stored them
        self.tally: Counter[int] = Counter()
        if with_states:
            self._read_states(found)

    @staticmethod
    def _read_fingerprints(
        found: object, logger: logging.Logger, stream: str, account: str
    ) -> tuple[dict[int, int], bool]:
        if not isinstance(found, dict) or "fingerprints" not in found:
            return {}, False
        try:
            return fpmod.decode(found["fingerprints"]), True
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning(
                "%s: state of account %r unreadable (%s); treating this run as a first run", stream, account, exc
            )
            return {}, False

    def _read_states(self, found: object) -> None:
        self.codes = {}
        if not isinstance(found, dict) or not self.fingerprints:
            return
        try:
            self.codes = decode_states(found.get("states"), self.fingerprints)
            if self.start_date and self.same_start_date:
                outside = decode_outside(found.get("outside"))
                self.outside = set(outside) - set(self.fingerprints)
                self.codes.update((row_id, outside[row_id]) for row_id in self.outside)
            self.codes_loaded = True
        except (ValueError, TypeError, zlib.error, binascii.Error):
            self.codes = {}
        runs = found.get("runs")
        self.runs = runs if isinstance(runs, int) and not isinstance(runs, bool) and runs >= 0 else 0
        counts = found.get("counts")
        if isinstance(counts, list) and len(counts) == len(COUNT_KEYS):
            self.previous_counts = dict(zip(COUNT_KEYS, counts))
        self.tally = Counter(self.codes.values())

    # -- rows --------------------------------------------------------------------------------------------------------

    def changed(self, row_id: int, fp: int) -> bool:
        return self.fingerprints.get(row_id) != fp

    def set_code(self, row_id: int, code: int) -> None:
        """Remember the state of an invoice (no-op for streams without states)."""
        if self.codes is None:
            return
        old = self.codes.get(row_id)
        if old == code:
            return
        if old is not None:
            self.tally[old] -= 1
        self.codes[row_id] = code
        self.tally[code] += 1

    def mark_outside(self, row_id: int) -> bool:
        """An invoice dated before start_date: known by state, never emitted. True if it was tracked before."""
        self.outside.add(row_id)
        return self.fingerprints.pop(row_id, None) is not None

    def forget(self, row_id: int) -> None:
        """A row gone from invoiz."""
        self.fingerprints.pop(row_id, None)
        self.outside.discard(row_id)
        if self.codes is not None:
            old = self.codes.pop(row_id, None)
            if old is not None:
                self.tally[old] -= 1

    def keep_outside_seen(self, seen: set[int]) -> None:
        """After a complete full listing: invoices before start_date that it did not show are gone."""
        for row_id in self.outside - seen:
            self.forget(row_id)

    # -- the state ---------------------------------------------------------------------------------------------------

    def store(self, accounts: MutableMapping, *, installation: str | None, final: bool) -> None:
        """Write this account's entry: the previous keys kept, the fingerprints (and states) replaced."""
        fps = self.fingerprints
        fingerprints = {"format": fpmod.FORMAT, "rows": len(fps), "fingerprints": fpmod.encode(fps)}
        entry = self.entry.updated(fingerprints, installation=installation, final=final)
        if self.codes is not None:
            entry["states"] = encode_states(self.codes, fps)
            if self.counts is not None:
                entry["counts"] = [self.counts[key] for key in COUNT_KEYS]
            else:
                entry.pop("counts", None)
            entry["runs"] = self.runs
            if self.start_date:
                entry["start_date"] = self.start_date
                entry["outside"] = encode_outside({i: self.codes.get(i, 0) for i in self.outside})
            else:
                entry.pop("start_date", None)
                entry.pop("outside", None)
        accounts[self.account] = entry


# -- the encodings of ``states`` and ``outside`` ---------------------------------------------------------------


def encode_states(codes: dict[int, int], ids: Iterable[int]) -> str:
    """One byte per id of ``ids`` (ascending, as the fingerprints are stored), compressed."""
    raw = bytes(codes.get(row_id, 0) for row_id in sorted(ids))
    return f"{STATES_FORMAT}:" + base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def decode_states(text: object, ids: Iterable[int]) -> dict[int, int]:
    """Inverse of :func:`encode_states`; ValueError if it does not fit ``ids``."""
    if not isinstance(text, str):
        msg = "no per-id states"
        raise ValueError(msg)
    prefix, _, payload = text.partition(":")
    if prefix != STATES_FORMAT:
        msg = f"unknown states format {prefix!r}"
        raise ValueError(msg)
    raw = zlib.decompress(base64.b64decode(payload))
    ordered = sorted(ids)
    if len(raw) != len(ordered):
        msg = "per-id states do not match the fingerprints"
        raise ValueError(msg)
    return dict(zip(ordered, raw))


def encode_outside(codes: dict[int, int]) -> str:
    """``{id: state code}`` of the invoices before start_date, compact (ids ascending, as gaps)."""
    ids = sorted(codes)
    out = bytearray()
    fpmod.write_ids(out, ids)
    out += bytes(codes[row_id] for row_id in ids)
    return f"{OUTSIDE_FORMAT}:" + base64.b64encode(zlib.compress(bytes(out), 9)).decode("ascii")


def decode_outside(text: object) -> dict[int, int]:
    """Inverse of :func:`encode_outside`; ValueError if it is not one."""
    if not isinstance(text, str) or not text.startswith(f"{OUTSIDE_FORMAT}:"):
        msg = "no states of invoices before start_date"
        raise ValueError(msg)
    raw = zlib.decompress(base64.b64decode(text.partition(":")[2]))
    ids, pos = fpmod.read_ids(raw)
    if len(raw) - pos != len(ids):
        msg = "corrupt states of invoices before start_date"
        raise ValueError(msg)
    return dict(zip(ids, raw[pos:]))
