"""tap-invoiz: the Singer tap class and its up-front checks (the settings are :mod:`tap_invoiz.settings`)."""

from __future__ import annotations

import functools
import logging
import sys
import time
import typing as t
import uuid
from functools import cached_property

import click
from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities
from singer_sdk.metrics import METRICS_LOGGER_NAME

from tap_invoiz import results, streams
from tap_invoiz.account_state import installation_hash, stored_installations
from tap_invoiz.auth import InvoizAuthenticator
from tap_invoiz.errors import InvoizConfigError
from tap_invoiz.progress import sync_summary
from tap_invoiz.retry import RetryPacer
from tap_invoiz.settings import CONFIG_SCHEMA, config_errors
from tap_invoiz.singer_writer import FastSingerWriter

if t.TYPE_CHECKING:
    from singer_sdk import Stream


class MetricsAtDebug(logging.Filter):
    """singer-sdk logs METRIC lines at INFO: one per HTTP request (http_request_duration, thousands in a backfill) and
    per-stream counters (http_request_count, record_count, sync_duration) that repeat what the tap's own summary
    lines say. They are shown only when the metrics logger is at DEBUG (TAP_INVOIZ_LOGLEVEL=debug or LOGLEVEL=debug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return logging.getLogger(METRICS_LOGGER_NAME).isEnabledFor(logging.DEBUG)


class SdkChatterAtDebug(logging.Filter):
    """singer-sdk INFO lines that tell a user nothing, or something wrong, shown only at DEBUG: "Beginning sync of
    'invoices' in full_table mode" (FULL_TABLE is only how the SDK sees a stream without a replication key; the tap is
    incremental by fingerprints and logs its own start line), "Skipping parse of env var settings...", "Added
    'invoice_payments' as child stream", "Skipping deselected stream"."""

    PREFIXES = (
        "Beginning sync of ",
        "Skipping parse of env var",
        "Parsing env var for settings",
        "Added '",
        "Skipping deselected stream",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return True
        return not str(record.msg).startswith(self.PREFIXES)


def _add_filter(logger: logging.Logger, kind: type[logging.Filter]) -> None:
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())


_add_filter(logging.getLogger(METRICS_LOGGER_NAME), MetricsAtDebug)
_add_filter(logging.getLogger("tap-invoiz"), SdkChatterAtDebug)  # TapInvoiz.name: the plugin's own logger


class TapInvoiz(Tap):
    """Singer tap for invoiz (invoices, contacts, invoice payments), incremental by row fingerprints."""

    name = "tap-invoiz"
    # singer-sdk's defaults without two:
    # - activate-version: target-postgres applies ACTIVATE_VERSION to the whole table, which several accounts may
    #   share; the sync_status stream takes its place (tap_invoiz.account_state).
    # - schema-flattening: flattening drops the tap's object columns (they declare no sub-properties;
    #   tests/ecosystem/test_tap_capabilities.py shows it), so --about does not offer it, as meltano.yml and the Hub
    #   definition do not.
    capabilities: t.ClassVar[list] = [
        c for c in Tap.capabilities if c not in (TapCapabilities.ACTIVATE_VERSION, PluginCapabilities.FLATTENING)
    ]

    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = FastSingerWriter  # singer-sdk's bytes, faster (tap_invoiz.singer_writer)
    #: The result of the last sync_all (tap_invoiz.results), None before one ended.
    last_result: dict | None = None

    # -- checks before any data moves ------------------------------------------------------------------------------

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        errors = super()._validate_config(raise_errors=False) + config_errors(self.config)
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        return errors

    @cached_property
    def invoiz_authenticator(self) -> InvoizAuthenticator:
        return InvoizAuthenticator(self.config)

    @cached_property
    def invoiz_pacer(self) -> RetryPacer:
        """One for the run: a 429 pauses every stream's requests, not only the stream that got it."""
        return RetryPacer()

    @cached_property
    def run_id(self) -> str:
        return uuid.uuid4().hex

    @cached_property
    def installation_hash(self) -> str | None:
        installation_id = self.config.get("installation_id")
        return installation_hash(self.account, installation_id) if installation_id else None

    @property
    def account(self) -> str:
        return str(self.config.get("account") or "default")

    @cached_property
    def sync_status_rows(self) -> list[dict]:
        """Filled by the list streams as they finish; sent by the sync_status stream, which runs last."""
        return []

    def _check_installation(self) -> None:
        """Fail (before anything is sent) when installation_id reaches another installation than the one this
        account's state was synced from; see :mod:`tap_invoiz.account_state`."""
        known = stored_installations(self.state, self.account)
        current = self.installation_hash
        if not known or current is None or known == {current}:
            return
        if self.config.get("allow_installation_change"):
            self.logger.warning(
                "account %r moves to another invoiz installation (allow_installation_change is set): rows the new "
                "installation does not have are marked deleted",
                self.account,
            )
            return
        msg = (
            f"setting installation_id reaches another invoiz installation than the one account {self.account!r} was "
            "synced from (the state keeps a one-way hash of it), so nothing was sent. Check that this account's "
            "credentials are its own (an extractor that inherits from tap-invoiz must set its own api_key, "
            "api_key_secret and installation_id); give another installation its own setting account; or, to move "
            f"account {self.account!r} on purpose, set allow_installation_change=true for one run"
        )
        raise InvoizConfigError(msg)

    def sync_all(self) -> None:
        """Check the installation (state) and the credentials (one token request) before any stream starts, then
        sync. Ends with the account's result line (:mod:`tap_invoiz.results`), also when the sync fails."""
        started = time.monotonic()
        try:
            try:
                self._check_installation()
                _ = self.invoiz_authenticator.token
            except InvoizConfigError as exc:
                # The message naming the settings to fix must be the last line on stderr (`meltano config test` shows
                # only that line), and plain text: through the logger it would be a JSON line when Meltano asks for
                # structured logs. SystemExit prints it as it is and exits 1; `meltano run` shows it, then "Extractor
                # failed".
                raise SystemExit(str(exc)) from None
            try:
                super().sync_all()
            finally:
                # RECORD lines the writer still holds (it writes them in blocks), also when the sync failed: they
                # were emitted, as with singer-sdk's writer, which writes each one at once.
                flush = getattr(self.message_writer, "flush", None)
                if flush is not None:
                    flush()
        except (Exception, SystemExit) as exc:
            self.report_result(time.monotonic() - started, exc)
            raise
        seconds = time.monotonic() - started
        self.logger.info("%s", self.sync_summary(seconds))
        self.report_result(seconds)

    def _progress(self) -> list:
        synced = [s for s in self.streams.values() if s.selected and hasattr(s, "progress")]
        return [s.progress for s in synced]  # type: ignore[attr-defined]

    def sync_summary(self, seconds: float) -> str:
        """One line over all streams: records emitted (per stream, and new/changed/deleted), requests, retries."""
        return sync_summary(self._progress(), self.invoiz_authenticator.token_requests, seconds)

    def report_result(self, seconds: float, error: BaseException | None = None) -> None:
        """Write the account's result line (also kept as ``last_result``, for tap-invoiz-fleet)."""
        self.last_result = results.account_result(
            self.account, self._progress(), self.invoiz_authenticator.token_requests, seconds, error
        )
        results.write_result(self.last_result)

    # -- tap-invoiz --diagnose [--output FILE] ------------------------------------------------------------------------

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """singer-sdk's command plus ``--diagnose`` and ``--output`` (see :mod:`tap_invoiz.diagnose`); bad settings end
        it with one plain-text line naming every problem: the SDK would log each one and then "Config validation
        failed" last — as a JSON line when Meltano asks for structured logs, and the last line is all
        `meltano config test` shows."""
        command = super().get_singer_command()
        callback = command.callback

        @functools.wraps(callback)
        def checked(*args: t.Any, **kwargs: t.Any) -> t.Any:
            try:
                return callback(*args, **kwargs)
            except ConfigValidationError as exc:
                raise SystemExit("Config validation failed: " + "; ".join(exc.errors)) from None

        command.callback = checked
        command.params.extend(
            [
                click.Option(
                    ["--diagnose"],
                    is_flag=True,
                    help="Read-only check of the invoiz account against the API contract the tap expects: a Markdown "
                    "report (no secrets, no personal data); exit 0 ok, 1 something blocks a correct sync, "
                    "2 cannot connect or authenticate.",
                ),
                click.Option(
                    ["--output"],
                    type=click.Path(dir_okay=False, writable=True),
                    help="With --diagnose: write the report to this file instead of stdout.",
                ),
            ]
        )
        return command

    @classmethod
    def invoke(cls, *, diagnose: bool = False, output: str | None = None, **kwargs: t.Any) -> None:  # type: ignore[override]
        if not diagnose:
            if output:
                cls.logger.error("--output is only used with --diagnose")
                sys.exit(2)
            super().invoke(**kwargs)
            return
        sys.exit(cls.run_diagnosis(kwargs.get("config"), output))

    @classmethod
    def run_diagnosis(cls, config_input: t.Any, output: str | None) -> int:
        """The --diagnose command: settings as for a sync (files and/or ENV); catalog and state are ignored."""
        from tap_invoiz.diagnose import config_problems, diagnose

        cls.print_version(print_fn=cls.logger.info)
        tap = cls(
            config=config_input.config if config_input else {},
            parse_env_config=bool(config_input and config_input.parse_env),
            validate_config=False,
            setup_mapper=False,
        )
        errors = tap._validate_config(raise_errors=False)
        if errors:
            report = config_problems(tap.config, errors)
            cls.logger.error("%s", report.fatal)
        else:
            report = diagnose(tap.config)
        text = report.render()
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
            cls.logger.info("diagnosis written to %s (exit status %d)", output, report.exit_code)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        return report.exit_code

    def discover_streams(self) -> list[Stream]:
        discovered = [
            streams.InvoicesStream(self),
            streams.ContactsStream(self),
            streams.InvoicePaymentsStream(self),
            streams.SyncStatusStream(self),  # last: it reports what the others did
        ]
        for stream in discovered:  # filters on a logger do not apply to its children's records
            _add_filter(stream.logger, SdkChatterAtDebug)
        return discovered


if __name__ == "__main__":
    TapInvoiz.cli()
