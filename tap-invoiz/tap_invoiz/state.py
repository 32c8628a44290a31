"""The tap's state of a list stream: per account, the fingerprints of the rows emitted so far, and when to write it.

The state (per stream and per ``account``) is updated only for rows that were emitted, and STATE messages follow the
records they cover, so a run killed halfway loses nothing: the next run re-emits what was not committed. What else an
account's entry holds (installation, full refreshes) is :mod:`tap_invoiz.account_state`; how fingerprints are
computed and stored is :mod:`tap_invoiz.fingerprint`.
"""

from __future__ import annotations

import typing as t

from tap_invoiz import fingerprint as fpmod
from tap_invoiz.account_state import AccountEntry, utc_now
from tap_invoiz.client import InvoizStream
from tap_invoiz.mapping_version import mapping_version

#: Emitted records between two STATE messages (each carries the whole encoded fingerprint map); tests lower it.
STATE_EVERY = 5000


class FingerprintStream(InvoizStream):
    """A stream whose state keeps, per account, the fingerprints of the rows it emitted (base of the list streams)."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded = False
        self._had_prior_state = False
        self._entry: AccountEntry | None = None
        self._started_at = ""
        self._fps: dict[int, int] = {}
        self._unflushed = 0

    @property
    def fingerprint_salt(self) -> str:
        """Part of every fingerprint: a new app_url (links) or mapping version (derived from the field tables,
        :mod:`tap_invoiz.mapping_version`) re-emits all rows once."""
        return f"{mapping_version()}|{self.app_url}"

    @staticmethod
    def account_states(stream: InvoizStream) -> dict:
        return stream.stream_state.setdefault("accounts", {})

    @property
    def run_id(self) -> str:
        return self._tap.run_id  # type: ignore[attr-defined]

    def _load_state(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        self._started_at = utc_now()  # before the first request: every record of this run is extracted later
        self._fps, self._had_prior_state = self._read_map(self)
        self._entry = self.account_entry(self, had_prior_state=self._had_prior_state)

    def account_entry(self, stream: InvoizStream, *, had_prior_state: bool) -> AccountEntry:
        """This account's entry in ``stream``'s state as the run found it (installation, full refreshes)."""
        return AccountEntry(
            self.account_states(stream).get(self.account),
            self.run_id,
            self._started_at,
            had_prior_state=had_prior_state,
        )

    def _read_map(self, stream: InvoizStream) -> tuple[dict[int, int], bool]:
        entry = self.account_states(stream).get(self.account)
        if not isinstance(entry, dict) or "fingerprints" not in entry:
            return {}, False
        try:
            return fpmod.decode(entry["fingerprints"]), True
        except (ValueError, TypeError, KeyError) as exc:
            stream.logger.warning(
                "%s: state of account %r unreadable (%s); treating this run as a first run",
                stream.name,
                self.account,
                exc,
            )
            return {}, False

    def _store_map(self, stream: InvoizStream, fps: dict[int, int], entry: AccountEntry, *, final: bool) -> None:
        fingerprints = {"format": fpmod.FORMAT, "rows": len(fps), "fingerprints": fpmod.encode(fps)}
        installation = self._tap.installation_hash  # type: ignore[attr-defined]
        self.account_states(stream)[self.account] = entry.updated(fingerprints, installation=installation, final=final)

    def _row_committed(self) -> None:
        """One more emitted record the state does not cover yet; a STATE message every STATE_EVERY of them."""
        self._unflushed += 1
        if self._unflushed >= STATE_EVERY:
            self._commit_state()

    def _commit_state(self, *, final: bool = False) -> None:
        """Write the fingerprints of everything emitted so far into the stream state and (unless the tap writes
        BATCH messages, whose STATE must wait for the batch files) send a STATE message."""
        batching = bool(self.get_batch_config(self.config))
        if batching and not final:
            return
        if self.selected and self._entry is not None:
            self._store_map(self, self._fps, self._entry, final=final)
        self._commit_children(final=final)
        self.state_manager.is_flushed = False
        if not final and not batching:
            self._write_state_message()
        self._unflushed = 0

    def _commit_children(self, *, final: bool) -> None:
        """Hook for streams whose children keep their own fingerprint maps."""

    def sync_status(self, listed: int) -> dict:
        """This stream's row for the ``sync_status`` stream (see :mod:`tap_invoiz.account_state`)."""
        entry = self._entry
        full_refresh = entry.full_refresh if entry is not None else None
        confirmed = entry.confirmed if entry is not None else None
        progress = self.progress
        return {
            "account": self.account,
            "stream": self.name,
            "run_id": self.run_id,
            "started_at": self._started_at,
            "completed_at": utc_now(),
            "full_refresh": not self._had_prior_state,
            "full_refresh_started_at": full_refresh.started_at if full_refresh else None,
            "full_refresh_rows": len(self._fps) if full_refresh else None,
            "last_full_refresh_started_at": confirmed.started_at if confirmed else None,
            "rows_listed": listed,
            "records_emitted": progress.emitted,
            "new": progress.new,
            "changed": progress.changed,
            "deleted": progress.deleted,
            "tracked": len(self._fps),
            "requests": progress.requests,
            "retries": progress.retries,
        }
