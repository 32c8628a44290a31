"""The state of a shard (tap-invoiz-fleet): one Singer state holding every account's entries, written seldom.

Meltano keeps one state per shard, so each STATE message of a shard must carry every account's entries
(``stream_state["accounts"][account]``). When every account's sync wrote its STATE messages with the whole shard
state, a run cost grew with the square of its accounts: a no-change run of 125 accounts wrote 259 STATE messages of
620 kB (162 MB), and most of its CPU went into copying, encoding and parsing them (tap and target).

Now each account syncs from a state holding only its own entries; its STATE messages go to :class:`ShardState`
(through :class:`AccountWriter`), which keeps the account's latest entries and writes the whole state at most every
:data:`STATE_EVERY_SECONDS` and once at the end of the shard. Fewer STATE messages lose nothing: a STATE message
covers the records written before it, and the next one covers them too. A shard killed between two loses only what
its accounts did since the last one, which their next sync does again (rows re-listed, records upserted).

Every account's sync also writes a SCHEMA message per stream, the same for every account (about 10 kB each, 3 per
account, each built from dataclasses and parsed again by the target). The shard writes a stream's SCHEMA message once
and again only if it differs from the last one written for that stream.
"""

from __future__ import annotations

import copy
import time
import typing as t

from singer_sdk.singerlib.encoding.simple import SchemaMessage, StateMessage

from tap_invoiz.singer_writer import FastSingerWriter

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

#: Seconds between two STATE messages of a shard while it runs (plus one at its end).
STATE_EVERY_SECONDS = 10.0


class ShardState:
    """Every account's entries of a shard's state; written as one STATE message, seldom (see the module)."""

    def __init__(self, state: dict | None) -> None:
        self.state: dict = copy.deepcopy(state) if state else {}
        self.written_at = time.monotonic()
        self.changed = False
        self.schemas: dict[str, tuple] = {}  # stream: what its last SCHEMA message said

    def schema_is_new(self, message: SchemaMessage) -> bool:
        """Whether a SCHEMA message says anything the last one written for its stream did not (and if so, it is now
        the last one)."""
        said = (message.schema, message.key_properties, message.bookmark_properties)
        if self.schemas.get(message.stream) == said:
            return False
        self.schemas[message.stream] = copy.deepcopy(said)
        return True

    def of_account(self, account: str) -> dict:
        """The state one account's sync starts from: the shard's state with that account's entries only."""
        if not self.state:
            return {}
        own = {key: copy.deepcopy(value) for key, value in self.state.items() if key != "bookmarks"}
        bookmarks = own["bookmarks"] = {}
        for stream, stream_state in self.state.get("bookmarks", {}).items():
            view = {key: copy.deepcopy(value) for key, value in stream_state.items() if key != "accounts"}
            entry = stream_state.get("accounts", {}).get(account)
            if entry is not None:
                view["accounts"] = {account: copy.deepcopy(entry)}
            bookmarks[stream] = view
        return own

    def emitted(self, account: str, account_state: dict) -> None:
        """An account's sync wrote a STATE message: its entries (a copy: the sync goes on changing its own) are now
        the shard's."""
        for key, value in account_state.items():
            if key != "bookmarks":
                self.state[key] = copy.deepcopy(value)
        shard_bookmarks = self.state.setdefault("bookmarks", {})
        for stream, stream_state in account_state.get("bookmarks", {}).items():
            target = shard_bookmarks.setdefault(stream, {})
            for key, value in stream_state.items():
                if key != "accounts":
                    target[key] = copy.deepcopy(value)
            entry = stream_state.get("accounts", {}).get(account)
            if entry is not None:
                target.setdefault("accounts", {})[account] = copy.deepcopy(entry)
            elif account in target.get("accounts", {}):
                del target["accounts"][account]
        self.changed = True

    def due(self) -> bool:
        """Whether a STATE message is due now: something changed and the last one is STATE_EVERY_SECONDS old."""
        return self.changed and time.monotonic() - self.written_at >= STATE_EVERY_SECONDS

    def message(self) -> StateMessage:
        """The STATE message of the whole shard, counted as written."""
        self.written_at = time.monotonic()
        self.changed = False
        return StateMessage(value=self.state)


class AccountWriter(FastSingerWriter):
    """The message writer of one account's sync inside a shard: its STATE messages go to the shard's state, which
    is written from here when due (after the RECORD lines this writer still holds: a STATE follows what it covers)."""

    def __init__(self, shard: ShardState, account: str) -> None:
        super().__init__()
        self.shard = shard
        self.account = account

    def write_message(self, message: Message) -> None:
        if type(message) is StateMessage:
            self.shard.emitted(self.account, message.value)
            if self.shard.due():
                super().write_message(self.shard.message())
            return
        if type(message) is SchemaMessage and not self.shard.schema_is_new(message):
            return
        super().write_message(message)
