"""Measurement primitives for `make bench` (bench/suite.py): one run of something, timed and checked.

- `meltano_run`: `meltano run [--full-refresh] tap-invoiz target-postgres` exactly as a user runs it (invoiz_ops.pipeline).
- `direct_run`: the plugin executables Meltano installed, piped tap | target (or tap > file), each process's peak RSS
  and CPU time read with os.wait4 — Meltano hides its children's resource usage, so this is the way to get them.
- `plain_loop_run`: the requests + json baseline (bench/plain_loop.py) in its own process, also via os.wait4.
- `dbt_build`: `dbt build` of transform/ with the dbt Meltano installed, outputs in a temporary folder.
- `list_concurrency`: how many list requests the sandbox answered at once — the concurrency the tap really used.
- `check_load`: did the rows arrive, undeleted, with the metadata dbt reads?
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from invoiz_ops.pipeline import PROJECT_ROOT, Pipeline, connect, dbt_env, dbt_executable
from tap_invoiz.results import read_results

TAP_EXE = PROJECT_ROOT / ".meltano" / "extractors" / "tap-invoiz" / "venv" / "bin" / "tap-invoiz"
TARGET_EXE = PROJECT_ROOT / ".meltano" / "loaders" / "target-postgres" / "venv" / "bin" / "target-postgres"
RAW_SCHEMA = "raw_invoiz"
API_KINDS = ("token", "invoice_list", "invoice_detail", "customer_list", "customer_detail")
LIST_KINDS = ("invoice_list", "customer_list")
# ru_maxrss is in kilobytes on Linux, bytes on macOS.
_RSS_PER_MB = 1024 * 1024 if sys.platform == "darwin" else 1024


class BenchError(RuntimeError):
    """A run failed or loaded wrong data; the message says which and why (never a secret)."""


# -- settings under test --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TapSettings:
    page_size: int
    max_concurrency: int
    batch: bool = False  # singer-sdk BATCH messages (jsonl + gzip files) instead of RECORD messages

    def label(self) -> str:
        return f"page_size {self.page_size}, max_concurrency {self.max_concurrency}" + (", BATCH" if self.batch else "")

    def config(self, batch_root: Path) -> dict:
        config: dict = {"page_size": self.page_size, "max_concurrency": self.max_concurrency}
        if self.batch:
            # gzip: singer-sdk 0.54 writes gzip even when asked for none, and target-postgres then fails.
            config["batch_config"] = {
                "encoding": {"format": "jsonl", "compression": "gzip"},
                "storage": {"root": batch_root.as_uri(), "prefix": "bench-"},
            }
        return config

    def meltano_env(self, batch_root: Path) -> dict[str, str]:
        return {
            f"TAP_INVOIZ_{key.upper()}": value if isinstance(value, str) else json.dumps(value)
            for key, value in self.config(batch_root).items()
        }


@dataclass(frozen=True)
class TargetSettings:
    """target-postgres settings on top of meltano.yml's (which every run keeps: metadata, activate_version, soft deletes)."""

    values: tuple[tuple[str, object], ...] = ()

    def label(self) -> str:
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in self.values) or "meltano.yml settings"

    def meltano_env(self) -> dict[str, str]:
        return {f"TARGET_POSTGRES_{key.upper()}": json.dumps(value) for key, value in self.values}


def tap_config(
    api_url: str, app_url: str, credentials: dict[str, str], account: str, settings: TapSettings, batch_root: Path
) -> dict:
    return {"api_url": api_url, "app_url": app_url, "account": account, **credentials, **settings.config(batch_root)}


def target_config(pg_env: dict[str, str], database: str, settings: TargetSettings) -> dict:
    # The loader config of meltano.yml, spelled out for a run without Meltano.
    return {
        "host": pg_env["PGHOST"],
        "port": int(pg_env["PGPORT"]),
        "user": pg_env["PGUSER"],
        "password": pg_env.get("PGPASSWORD") or "",
        "database": database,
        "default_target_schema": RAW_SCHEMA,
        "add_record_metadata": True,
        "activate_version": True,
        "hard_delete": False,
        **dict(settings.values),
    }


# -- what the sandbox saw -------------------------------------------------------------------------------------------


def list_concurrency(sandbox) -> int:
    """The most list requests of one kind the sandbox was answering at once since its counters were reset (its
    latency sleep included): the concurrency the tap really used, whatever max_concurrency says."""
    return max(sandbox.max_in_flight[kind] for kind in LIST_KINDS)


def api_requests(sandbox) -> dict[str, int]:
    return {kind: sandbox.requests[kind] for kind in API_KINDS if sandbox.requests[kind]}


# -- outcomes -------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One timed run and what it did."""

    seconds: float
    requests: int = 0
    request_kinds: dict[str, int] = field(default_factory=dict)
    peak_concurrency: int = 0
    emitted: int | None = None  # records the tap emitted (its result line)
    received: int | None = None  # RECORD messages target-postgres read (its "Reader ... completed" line)
    batch_manifests: int | None = None
    rows: int | None = None  # rows written by the baseline loop
    tap_rss_mb: float | None = None
    target_rss_mb: float | None = None
    tap_cpu_s: float | None = None
    target_cpu_s: float | None = None
    problems: list[str] = field(default_factory=list)
    content: str | None = None  # fingerprint of the loaded rows without the _sdc_* columns (check_load)


_READER = re.compile(r"\((\d+) schemas, (\d+) records, (\d+) batch manifests")


def tap_records(log: str) -> int | None:
    """Records tap-invoiz emitted, from its result line(s) (``tap-invoiz result {...}``, the fleet runner reads the
    same); None when the log has none."""
    results = read_results(log)
    return sum(int(result["records"]) for result in results.values()) if results else None


def plugin_lines(meltano_log: str, plugin: str) -> str:
    """The lines Meltano relayed from one plugin (`... [info     ] tap-invoiz   message`)."""
    return "\n".join(line for line in meltano_log.splitlines() if f"] {plugin} " in line)


_METRIC = re.compile(r"METRIC: (\{.*?\})(?:\s|$)")


def status_rows(target_log: str) -> int:
    """RECORD messages of the tap's own report stream ``sync_status`` (one row per account and stream, every run)
    that the target counted (its record_count METRIC lines, logged at info): rows about the run, not invoiz data."""
    metrics = [json.loads(m.group(1)) for m in _METRIC.finditer(target_log)]
    return sum(
        int(m.get("value") or 0)
        for m in metrics
        if m.get("metric") == "record_count" and (m.get("tags") or {}).get("stream") == "sync_status"
    )


def parse_logs(tap_log: str, target_log: str) -> tuple[int | None, int | None, int | None]:
    """(invoiz records the tap emitted, invoiz RECORD messages the target read — its reader's count without the
    ``sync_status`` rows, which the tap's result line does not count either —, BATCH manifests the target read)."""
    readers = _READER.findall(target_log)
    received = sum(int(r[1]) for r in readers) - status_rows(target_log) if readers else None
    manifests = sum(int(r[2]) for r in readers) if readers else None
    return tap_records(tap_log), received, manifests


def run_outcome(sandbox, seconds: float, tap_log: str, target_log: str) -> Outcome:
    """What a tap | target run did: its time, the requests the sandbox counted, what the tap and the target logged."""
    kinds = api_requests(sandbox)
    emitted, received, manifests = parse_logs(tap_log, target_log)
    return Outcome(
        seconds=seconds,
        requests=sum(kinds.values()),
        request_kinds=kinds,
        peak_concurrency=list_concurrency(sandbox),
        emitted=emitted,
        received=received,
        batch_manifests=manifests,
    )


def check_load(pg_env: dict[str, str], database: str, expected: dict[str, int]) -> tuple[list[str], str]:
    """What a backfill left in PostgreSQL: problems (missing or soft-deleted rows, metadata dbt reads left empty) and a
    fingerprint of the loaded values without the `_sdc_*` columns, to compare loads made with different settings."""
    problems, fingerprints = [], []
    with connect(pg_env, database) as conn:
        for table, want in expected.items():
            try:
                live, unbatched = conn.execute(
                    f"select count(*) filter (where _sdc_deleted_at is null), "  # fixed names
                    f"count(*) filter (where _sdc_batched_at is null) from {RAW_SCHEMA}.{table}"
                ).fetchone()
                columns = [
                    name
                    for (name,) in conn.execute(
                        "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
                        "and column_name not like '\\_sdc\\_%%' order by column_name",
                        (RAW_SCHEMA, table),
                    )
                ]
                # Order-independent sum of row hashes: no 100 MB string_agg.
                row = ", ".join(f'"{c}"' for c in columns)
                count, total = conn.execute(
                    f"select count(*), coalesce(sum(hashtextextended(row({row})::text, 0)::numeric), 0) "
                    f"from {RAW_SCHEMA}.{table}"
                ).fetchone()
            except Exception as exc:
                problems.append(f"{table}: not readable ({type(exc).__name__})")
                conn.rollback()
                continue
            if live != want:
                problems.append(f"{table}: {live} live rows of {want}")
            if unbatched:
                problems.append(f"{table}: _sdc_batched_at empty on {unbatched} rows")
            fingerprints.append(f"{table}:{len(columns)}:{count}:{total}")
    return problems, " ".join(fingerprints)


# -- runs -----------------------------------------------------------------------------------------------------------


def meltano_run(pipe: Pipeline, sandbox, *, full_refresh: bool) -> Outcome:
    sandbox.reset_counters()
    started = time.perf_counter()
    result = pipe.run("tap-invoiz", "target-postgres", full_refresh=full_refresh, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchError(f"meltano run failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    log = result.stdout + result.stderr
    return run_outcome(sandbox, seconds, log, plugin_lines(log, "target-postgres"))  # only the tap writes results


def _private_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))  # mode 0700: config files in it may hold a database password


def _write_json(path: Path, content: dict) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(content, handle)
    return path


def _wait(process: subprocess.Popen) -> tuple[float, float]:
    """Reap one child; its own peak RSS (MB) and CPU seconds (user + system), not its children's."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / _RSS_PER_MB, usage.ru_utime + usage.ru_stime


def direct_run(sandbox, tap_cfg: dict, target_cfg: dict | None) -> Outcome:
    """tap-invoiz | target-postgres (or tap-invoiz > /dev/null when target_cfg is None), no state: a backfill."""
    workdir = _private_dir("bench-direct-")
    tap = target = None
    try:
        tap_args = [str(TAP_EXE), "--config", str(_write_json(workdir / "tap.json", tap_cfg))]
        tap_log = open(workdir / "tap.log", "w+b")  # closed below
        target_log = open(workdir / "target.log", "w+b")
        sandbox.reset_counters()
        started = time.perf_counter()
        if target_cfg is None:
            tap = subprocess.Popen(tap_args, stdout=subprocess.DEVNULL, stderr=tap_log)
            target = None
        else:
            tap = subprocess.Popen(tap_args, stdout=subprocess.PIPE, stderr=tap_log)
            target = subprocess.Popen(
                [str(TARGET_EXE), "--config", str(_write_json(workdir / "target.json", target_cfg))],
                stdin=tap.stdout,
                stdout=subprocess.DEVNULL,
                stderr=target_log,
            )
            tap.stdout.close()  # the target holds the read end; the tap gets SIGPIPE if the target dies
        tap_usage = _wait(tap)
        target_usage = _wait(target) if target is not None else None
        seconds = time.perf_counter() - started
        logs = {}
        for name, handle in (("tap", tap_log), ("target", target_log)):
            handle.seek(0)
            logs[name] = handle.read().decode("utf-8", "replace")
            handle.close()
        failed = [
            (name, p.returncode)
            for name, p in (("tap-invoiz", tap), ("target-postgres", target))
            if p is not None and p.returncode != 0
        ]
        if failed:
            name = failed[0][0]
            log = logs["tap" if name == "tap-invoiz" else "target"]
            raise BenchError(f"{name} failed (exit {failed[0][1]}):\n{log[-3000:]}")
        outcome = run_outcome(sandbox, seconds, logs["tap"], logs["target"])
        outcome.tap_rss_mb, outcome.tap_cpu_s = tap_usage
        if target_usage is not None:
            outcome.target_rss_mb, outcome.target_cpu_s = target_usage
        return outcome
    finally:
        for process in (tap, target):  # only after an error: never leave our own children running
            if process is not None and process.returncode is None:
                process.kill()
                process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def plain_loop_run(sandbox, page_size: int, *, ahead: bool = False) -> Outcome:
    """bench/plain_loop.py in its own process; ``ahead``: the next page is fetched while this one is written."""
    env = dict(
        os.environ,
        BENCH_API_URL=sandbox.api_url,
        BENCH_API_KEY=sandbox.credentials["api_key"],
        BENCH_API_KEY_SECRET=sandbox.credentials["api_key_secret"],
        BENCH_INSTALLATION_ID=sandbox.credentials["installation_id"],
    )
    sandbox.reset_counters()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.plain_loop", str(page_size), os.devnull, *(["--ahead"] if ahead else [])],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    usage = _wait(process)
    seconds = time.perf_counter() - started
    out, err = process.stdout.read(), process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    if process.returncode != 0:
        raise BenchError(f"baseline loop failed (exit {process.returncode}):\n{err.decode()[-3000:]}")
    summary = json.loads(out)
    kinds = api_requests(sandbox)
    return Outcome(
        seconds=seconds,
        requests=sum(kinds.values()),
        request_kinds=kinds,
        peak_concurrency=list_concurrency(sandbox),
        rows=summary["rows"],
        tap_rss_mb=usage[0],
        tap_cpu_s=usage[1],
    )


def dbt_build(pg_env: dict[str, str], database: str) -> tuple[float, str]:
    """Seconds of `dbt build` on `database` (models in schema analytics) and a one-line result summary."""
    dbt = dbt_executable()
    if dbt is None:
        raise BenchError("dbt is not installed (run `make install`)")
    workdir = _private_dir("bench-dbt-")
    try:
        env = dbt_env(pg_env, database)
        project = PROJECT_ROOT / "transform"
        # Own target and log paths: other people's dbt runs in this checkout use transform/target.
        command = [
            dbt,
            "build",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project / "profiles"),
            "--target-path",
            str(workdir / "target"),
            "--log-path",
            str(workdir / "logs"),
        ]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=900, check=False)
        seconds = time.perf_counter() - started
        summary = next((line.strip() for line in reversed(result.stdout.splitlines()) if "PASS=" in line), "")
        if result.returncode != 0:
            raise BenchError(f"dbt build failed (exit {result.returncode}): {summary}\n{result.stdout[-3000:]}")
        return seconds, summary[summary.find("PASS=") :] if summary else "ok"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
