"""Measure the sandbox: start-up time and peak memory of the ``invoiz-sandbox`` process.

    python -m bench.sandbox --invoices 100000 1000000

Starts the console script in a subprocess, times until the "listening" line, runs a few typical requests
(token, first and last page by date, a filtered page, customers by name, one detail, a full scan of
the first 10,000 rows), stops it with SIGTERM and reads its peak RSS from ``os.wait4``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import requests


def api_url_of(start_line: str) -> str:
    """The API URL in the sandbox's start line: the word after ``listening on`` (invoiz-sandbox/README.md)."""
    _, found, after = start_line.partition("listening on ")
    if not found or not after.split():
        raise SystemExit(f"bench.sandbox: the sandbox printed no start line, but: {start_line.strip()!r}")
    return after.split()[0]


def measure(invoices: int, seed: int = 42, page: int = 500) -> dict:
    exe = os.path.join(os.path.dirname(sys.executable), "invoiz-sandbox")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "invoiz_sandbox"]
    t0 = time.perf_counter()
    p = subprocess.Popen(
        cmd + ["--port", "0", "--seed", str(seed), "--invoices", str(invoices)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = p.stdout.readline()
        ready = time.perf_counter() - t0
        timings = _typical_requests(api_url_of(line), invoices, page)
    except BaseException:  # the sandbox must not outlive a failed measurement
        p.kill()
        p.wait()
        raise
    p.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return {
        "invoices": invoices,
        "ready_s": round(ready, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit": p.returncode,
        **timings,
    }


def _typical_requests(api: str, invoices: int, page: int) -> dict:
    """Seconds per typical request, and the rows per second of a scan over the first 10,000 rows."""
    s = requests.Session()
    tok = s.post(
        api + "auth/token",
        auth=("sandbox-key", "sandbox-secret"),
        json={"installationId": "sandbox-installation"},
        timeout=30,
    ).json()["token"]
    s.headers["Authorization"] = f"Bearer {tok}"
    timings = {}

    def timed(name, path, **params):
        t = time.perf_counter()
        r = s.get(api + path, params=params, timeout=600)
        r.raise_for_status()
        timings[name] = round(time.perf_counter() - t, 3)
        return r.json()

    timed("first_list_page_by_date", "invoice", orderBy="date", limit=page)
    timed("first_page_date_desc", "invoice", orderBy="date", desc="true", limit=page)
    timed("last_page_by_date", "invoice", orderBy="date", offset=max(0, invoices - page), limit=page)
    timed("filter_paid_page", "invoice", filter="paid", limit=page)
    timed("customers_by_name", "customer", orderBy="name", limit=page)
    j = timed("detail", f"invoice/{100001 + invoices // 2}")
    assert "invoice" in j["data"]
    t = time.perf_counter()
    n = 0
    for off in range(0, min(invoices, 10000), page):
        n += len(
            s.get(api + "invoice", params={"orderBy": "date", "offset": off, "limit": page}, timeout=60).json()["data"]
        )
    timings["scan_rows_per_s"] = round(n / (time.perf_counter() - t))
    return timings


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--invoices", type=int, nargs="+", default=[100000, 1000000])
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    for n in args.invoices:
        print(measure(n, args.seed), flush=True)


if __name__ == "__main__":
    main()
