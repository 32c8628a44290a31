"""What the state remembers per account besides fingerprints: its installation and its full refreshes.

Several invoiz accounts may load into the same tables, so nothing here may act on a table as a whole:

* **Installation.** A one-way hash of ``installation_id`` (salted with the account name) is kept in every account
  entry. A run whose ``installation_id`` hashes differently under the same ``account`` fails before anything is
  emitted: its credentials reach another invoiz installation, whose rows would land under this account's name.
  Rotating the API key or secret keeps the installation and stays fine. ``allow_installation_change`` permits an
  intended move.
* **Full refreshes.** A run without prior state of an account (first run, ``meltano run --full-refresh``) sends every
  row in scope. It does not send ACTIVATE_VERSION (target-postgres applies that to the whole table, every account's
  rows); instead the ``sync_status`` stream reports, per account and stream, when that full refresh started, and
  staging treats the account's rows extracted before that moment as gone from invoiz (docs/DESIGN.md, "Deletions").
  The entry keeps ``full_refresh_in_progress`` while a full refresh runs (so a killed one is completed by the next
  run) and ``last_full_refresh`` once its final state was written, i.e. once the target had committed all its rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Mapping

#: PBKDF2 rounds for the installation hash: a guess costs about 10 ms, one run pays it once per account.
_HASH_ROUNDS = 20_000


def installation_hash(account: str, installation_id: str) -> str:
    """A one-way hash of the installation id, salted with the account (equal ids of two accounts hash apart)."""
    salt = f"tap-invoiz installation of account {account}".encode()
    digest = hashlib.pbkdf2_hmac("sha256", str(installation_id).encode(), salt, _HASH_ROUNDS, dklen=16)
    return digest.hex()


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


class FullRefresh(t.NamedTuple):
    """A full refresh of one account and stream: every row in scope sent at or after ``started_at``."""

    run_id: str
    started_at: str

    def as_entry(self) -> dict:
        return {"run_id": self.run_id, "started_at": self.started_at}

    @classmethod
    def from_entry(cls, entry: object) -> FullRefresh | None:
        if isinstance(entry, dict) and isinstance(entry.get("started_at"), str):
            return cls(str(entry.get("run_id") or ""), entry["started_at"])
        return None


class AccountEntry:
    """One account's entry in one stream's state (``stream_state["accounts"][account]``), read at the start of a run.

    ``full_refresh`` is the full refresh this run carries out: its own when there is no prior state, or one that a
    killed run started (its rows sent so far are in the state; this run sends the rest).
    """

    def __init__(self, entry: Mapping | None, run_id: str, started_at: str, *, had_prior_state: bool) -> None:
        self.before: dict = dict(entry) if isinstance(entry, dict) else {}
        self.confirmed = FullRefresh.from_entry(self.before.get("last_full_refresh"))
        interrupted = FullRefresh.from_entry(self.before.get("full_refresh_in_progress"))
        if not had_prior_state:
            self.full_refresh: FullRefresh | None = FullRefresh(run_id, started_at)
        else:
            self.full_refresh = interrupted

    @property
    def must_list_everything(self) -> bool:
        """A run that carries out a full refresh must list (and send what changed of) every row."""
        return self.full_refresh is not None

    def updated(self, fingerprints: dict, *, installation: str | None, final: bool) -> dict:
        """The entry to store: the previous keys kept, fingerprints replaced, the full-refresh markers advanced."""
        entry = dict(self.before)
        entry.update(fingerprints)
        if installation:
            entry["installation"] = installation
        if self.full_refresh is not None:
            if final:
                entry.pop("full_refresh_in_progress", None)
                entry["last_full_refresh"] = {**self.full_refresh.as_entry(), "rows": fingerprints.get("rows")}
            else:
                entry["full_refresh_in_progress"] = self.full_refresh.as_entry()
        return entry


def stored_installations(state: Mapping, account: str) -> set[str]:
    """Installation hashes the tap state remembers for ``account`` (normally one; none before its first run)."""
    found = set()
    for stream_state in (state.get("bookmarks") or {}).values():
        accounts = stream_state.get("accounts") if isinstance(stream_state, dict) else None
        entry = accounts.get(account) if isinstance(accounts, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("installation"), str):
            found.add(entry["installation"])
    return found
