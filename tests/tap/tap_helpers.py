"""Run tap-invoiz in-process (or as the console script) against an invoiz sandbox and collect its Singer messages."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from singer_sdk.io_base import SingerWriter

from tap_invoiz.tap import TapInvoiz

TAP_EXE = str(Path(sys.executable).parent / "tap-invoiz")
#: Keys of an account's state entry that name a run (tap_invoiz.account_state), not what was tracked.
RUN_SPECIFIC_KEYS = ("last_full_refresh", "full_refresh_in_progress")


def sandbox_config(sb, **overrides) -> dict:
    config = {**sb.credentials, "api_url": sb.api_url, "app_url": sb.app_url, "account": "test", "max_retries": 3}
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


@dataclass
class Run:
    messages: list[dict]
    stderr: str = ""
    stdout: str = ""
    returncode: int = 0
    states: list[dict] = field(default_factory=list)

    def records(self, stream: str) -> list[dict]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    def ids(self, stream: str) -> set[int]:
        return {r["id"] for r in self.records(stream)}

    def live(self, stream: str) -> dict[int, dict]:
        return {r["id"]: r for r in self.records(stream) if r.get("_sdc_deleted_at") is None}

    def tombstones(self, stream: str) -> set[int]:
        return {r["id"] for r in self.records(stream) if r.get("_sdc_deleted_at") is not None}

    def activate_versions(self) -> list[str]:
        return [m["stream"] for m in self.messages if m["type"] == "ACTIVATE_VERSION"]

    @property
    def state(self) -> dict:
        return copy.deepcopy(self.states[-1]) if self.states else {}

    @property
    def fingerprints(self) -> dict:
        """The state without what differs from run to run (run ids and times of full refreshes): what was tracked."""
        state = self.state
        for stream_state in state.get("bookmarks", {}).values():
            for entry in stream_state.get("accounts", {}).values():
                for key in RUN_SPECIFIC_KEYS:
                    entry.pop(key, None)
        return state


def catalog_for(
    config: dict, *, payments: bool = False, invoices: bool = True, contacts: bool = True, sync_status: bool = True
) -> dict:
    tap = TapInvoiz(config=config, validate_config=False, setup_mapper=False)
    catalog = tap.catalog_dict
    wanted = {"invoices": invoices, "contacts": contacts, "invoice_payments": payments, "sync_status": sync_status}
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = wanted[stream["tap_stream_id"]]
    return catalog


def _parse(stdout: str) -> tuple[list[dict], list[dict]]:
    messages = []
    for line in stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue  # --about / --discover print pretty JSON over several lines
        if isinstance(message, dict) and "type" in message:
            messages.append(message)
    return messages, [m["value"] for m in messages if m["type"] == "STATE"]


def run_tap(
    config: dict, state: dict | None = None, *, payments: bool = False, catalog: dict | None = None, **select
) -> Run:
    """Run a full sync in this process; returns the messages it wrote."""
    if catalog is None and (payments or select):
        catalog = catalog_for(config, payments=payments, **select)
    writer = _ListWriter()
    tap = TapInvoiz(
        config=config, state=copy.deepcopy(state) if state else None, catalog=catalog, message_writer=writer
    )
    tap.sync_all()
    messages, states = _parse("\n".join(writer.lines))
    return Run(messages, states=states)


class _ListWriter(SingerWriter):
    """Keeps the serialised messages (not sys.stdout: pytest's live logging swaps that mid-run)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def write_message(self, message) -> None:
        self.lines.append(self.format_message(message))


def run_cli(
    config: dict,
    state: dict | None = None,
    tmp_path: Path | None = None,
    *,
    env: dict | None = None,
    args: tuple[str, ...] = (),
) -> Run:
    """Run the console script ``tap-invoiz`` as a subprocess."""
    assert tmp_path is not None
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    argv = [TAP_EXE, "--config", str(config_path), *args]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        argv += ["--state", str(state_path)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300, check=False
    )
    messages, states = _parse(proc.stdout)
    return Run(messages, stderr=proc.stderr, stdout=proc.stdout, returncode=proc.returncode, states=states)
