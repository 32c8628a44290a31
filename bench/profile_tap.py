"""Where the tap's CPU goes: a backfill of the tap alone under cProfile, its top functions.

    .venv/bin/python -m bench.profile_tap [--invoices 100000] [--top 25] [--output FILE.md]

Starts the invoiz sandbox in this process (seed 42, no latency), runs ``python -m tap_invoiz.tap --config …`` as a
subprocess under ``cProfile`` with its Singer output going to /dev/null (as section 2 of `make bench` does), and
prints the functions with the most own time ("self") and the tap's own stages by cumulative time, as a Markdown
table. The sandbox builds its pages in another process's threads, so the profile holds only the tap's work; cProfile
roughly doubles the cost of Python calls, so compare shares within one profile, not seconds with `make bench`.
cProfile sees only the main thread: the page worker that fetches the next page ahead (tap_invoiz/paging.py) also
decodes its JSON, so "JSON decoding of the answers" shows only what the main thread decodes (the first page of each
listing), and "listing pages" includes the main thread's waits for the page ahead.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from invoiz_sandbox import Sandbox

SEED = 42
TODAY = "2026-11-01"

#: Stages of the tap's per-row work, by cumulative time (file suffix, function name) → label.
STAGES = {
    ("tap_invoiz/responses.py", "response_body"): "JSON decoding of the answers",
    ("tap_invoiz/fingerprint.py", "fingerprint"): "fingerprints",
    ("tap_invoiz/records.py", "map"): "row → record mapping (RecordMapper.map)",
    ("singer_sdk/streams/core.py", "_write_record_message"): "RECORD messages (SDK: build + encode + write)",
    ("singer_sdk/streams/core.py", "_process_record"): "SDK per-record bookkeeping (_process_record)",
    ("tap_invoiz/sync.py", "_emit"): "emitting a record (mapping, SDK, children, state)",
    ("tap_invoiz/paging.py", "rows"): "listing pages (requests, decoding, parse_response)",
}


def _stage_rows(stats: pstats.Stats, total: float) -> list[list[str]]:
    rows = []
    for (suffix, name), label in STAGES.items():
        cumulative = sum(
            entry[3]
            for (path, _, func), entry in stats.stats.items()  # type: ignore[attr-defined]
            if func == name and path.replace(os.sep, "/").endswith(suffix)
        )
        rows.append([label, f"`{suffix.split('/')[-1]}:{name}`", f"{cumulative:.2f} s", f"{cumulative / total:.0%}"])
    return rows


def _top_rows(stats: pstats.Stats, total: float, top: int) -> list[list[str]]:
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    rows = []
    for (path, line, func), (_, calls, own, cumulative, _) in entries[:top]:
        where = "/".join(Path(path).parts[-2:]) if path != "~" else "(built-in)"
        rows.append(
            [f"`{func}`", f"{where}:{line}", f"{calls:,}", f"{own:.2f} s", f"{own / total:.0%}", f"{cumulative:.2f} s"]
        )
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def profile(invoices: int, top: int) -> str:
    with Sandbox(seed=SEED, invoices=invoices, today=TODAY) as sandbox, tempfile.TemporaryDirectory() as scratch:
        config_path = Path(scratch) / "tap.json"
        config = {
            "api_url": sandbox.api_url,
            "app_url": sandbox.app_url,
            "account": "profile",
            **sandbox.credentials,
            "page_size": 500,
            "max_concurrency": 1,
        }
        config_path.write_text(json.dumps(config), encoding="utf-8")
        profile_path = Path(scratch) / "tap.prof"
        command = [sys.executable, "-m", "cProfile", "-o", str(profile_path), "-m", "tap_invoiz.tap"]
        started = time.perf_counter()
        result = subprocess.run(
            [*command, "--config", str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"the tap failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
        stats = pstats.Stats(str(profile_path), stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = invoices + max(8, invoices // 5)  # the sandbox's contacts: invoices ÷ 5
    return "\n".join(
        [
            f"cProfile of `tap-invoiz` alone, backfill of {invoices:,} invoices and their contacts ({rows:,} rows), "
            f"page_size 500, max_concurrency 1, no latency, output to /dev/null: {total:.1f} s profiled "
            f"({seconds:.1f} s wall clock with the profiler).",
            "",
            "Stages (cumulative time, share of the profiled total):",
            "",
            table(["stage", "function", "cumulative", "share"], _stage_rows(stats, total)),
            "",
            f"Top {top} functions by own time:",
            "",
            table(["function", "where", "calls", "own", "share", "cumulative"], _top_rows(stats, total, top)),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--output", type=Path, help="also write the Markdown here")
    args = parser.parse_args(argv)
    text = profile(args.invoices, args.top)
    print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
