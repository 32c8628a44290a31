"""Listing invoices by state against the full listing, side by side in one run.

    .venv/bin/python -m bench.listing [--invoices 10000 100000] [--mix realistic default] [--latency-ms 100]
                                      [--start-date 2024-01-01]

For each size and state mix: an in-process invoiz sandbox (seed 42, clock 2026-11-01) and the tap in-process
(invoices only: contacts are listed fully either way), page_size 500, max_concurrency 2, full_scan_every 96.
After a first run (the backfill) it measures, from the same state:

* a run without changes, listing everything (``full_scan_every = 1``, the behaviour before listing by state),
* a run without changes, listing by state,
* the same two with ``start_date`` (about a third of the invoices are dated before it), from the state of a backfill
  with that start_date: listed and counted by invoiz, never emitted,
* after a few changes (one each: written and paid, open → paid, paid → cancelled, payment deleted, open → dunned,
  a finalised invoice deleted), the full listing and the listing by state, both from the state of the backfill.

Invoice requests are counted by the sandbox (list + detail); wall time is the tap's ``sync_all``. Prints a Markdown
table with the ratios ÷ the full listing (docs/BENCHMARKS.md, "Listing by state").
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import logging
import platform
import time

from singer_sdk.io_base import SingerWriter

from invoiz_sandbox import Sandbox
from invoiz_sandbox.data import ST
from tap_invoiz import listing
from tap_invoiz.tap import TapInvoiz


class _Count(SingerWriter):
    """Counts RECORD messages and keeps the last STATE (no message text kept: 100k records)."""

    def __init__(self) -> None:
        super().__init__()
        self.records = 0
        self.state: dict = {}

    def write_message(self, message) -> None:
        kind = getattr(message, "type", None)
        kind = getattr(kind, "value", kind)
        if kind == "RECORD":
            self.records += 1
        elif kind == "STATE":
            self.state = copy.deepcopy(message.value)


def _catalog(config: dict) -> dict:
    catalog = TapInvoiz(config=config, validate_config=False, setup_mapper=False).catalog_dict
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == "invoices"
    return catalog


def _run(sb: Sandbox, config: dict, catalog: dict, state: dict | None) -> dict:
    sb.reset_counters()
    writer = _Count()
    tap = TapInvoiz(
        config=config, state=copy.deepcopy(state) if state else None, catalog=catalog, message_writer=writer
    )
    started = time.perf_counter()
    tap.sync_all()
    seconds = time.perf_counter() - started
    requests = sb.requests["invoice_list"] + sb.requests["invoice_detail"]
    return {
        "seconds": seconds,
        "requests": requests,
        "details": sb.requests["invoice_detail"],
        "records": writer.records,
        "state": writer.state,
    }


def _ids(sb: Sandbox, state: str) -> list[int]:
    ds, code = sb.dataset, ST[state]
    return [ds.inv_id(i) for i in range(ds.n) if ds.state[i] == code]


def _few_changes(sb: Sandbox) -> int:
    paid, locked, dunned = _ids(sb, "paid"), _ids(sb, "locked"), _ids(sb, "dunned")
    sb.write_and_pay(customer_id=sb.contact_ids()[0])
    sb.pay(locked[0])
    sb.cancel(paid[len(paid) // 2])
    sb.delete_payment(paid[len(paid) // 3])
    sb.dun(locked[1])
    sb.delete_invoice(dunned[0], finalised=True)
    return 6


def bench(invoices: int, mix: str, latency_ms: float, every: int, start_date: str) -> dict:
    with Sandbox(seed=42, invoices=invoices, contacts=max(8, invoices // 5), mix=mix, today="2026-11-01") as sb:
        base = {
            **sb.credentials,
            "api_url": sb.api_url,
            "app_url": sb.app_url,
            "account": "bench",
            "page_size": 500,
            "max_concurrency": 2,
            "full_scan_every": every,
        }
        catalog = _catalog(base)
        backfill = _run(sb, base, catalog, None)
        dated = {**base, "start_date": start_date}
        dated_backfill = _run(sb, dated, catalog, None)
        counts = dict(
            zip(listing.COUNT_KEYS, backfill["state"]["bookmarks"]["invoices"]["accounts"]["bench"]["counts"])
        )
        sb.set_latency(latency_ms)
        full = {**base, "full_scan_every": 1}
        result = {
            "invoices": invoices,
            "mix": mix,
            "counts": counts,
            "state_kb": len(backfill["state"]["bookmarks"]["invoices"]["accounts"]["bench"]["states"]) / 1000,
            "quiet_full": _run(sb, full, catalog, backfill["state"]),
            "quiet_state": _run(sb, base, catalog, backfill["state"]),
            "quiet_dated_full": _run(sb, {**dated, "full_scan_every": 1}, catalog, dated_backfill["state"]),
            "quiet_dated_state": _run(sb, dated, catalog, dated_backfill["state"]),
        }
        result["changes"] = _few_changes(sb)
        result["changed_full"] = _run(sb, full, catalog, backfill["state"])
        result["changed_state"] = _run(sb, base, catalog, backfill["state"])
        incremental, pages = listing.estimated_requests(counts, 500, every)
        result["formula"] = incremental
        result["pages"] = pages
        return result


def render(results: list[dict], latency_ms: float, every: int, start_date: str) -> str:
    lines = [
        f"`python -m bench.listing` on {platform.python_implementation()} {platform.python_version()}, "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC: sandbox latency {latency_ms:g} ms per request, "
        f"page_size 500, max_concurrency 2, full_scan_every {every}, invoices only. One run per cell; the full "
        "listing and the listing by state run one after the other from the same state. Rows with start_date: "
        f"start_date {start_date}, from the state of a backfill with it.",
        "",
        "| invoices | mix (paid / cancelled / open+draft) | run | invoice requests | wall time | records | "
        "requests ÷ full | time ÷ full |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c = r["counts"]
        mix = (
            f"{r['mix']} ({100 * c['paid'] / c['all']:.0f} % / {100 * c['cancelled'] / c['all']:.0f} % / "
            f"{100 * (c['all'] - c['paid'] - c['cancelled']) / c['all']:.0f} %)"
        )
        for label, full_key, key in (
            ("no change: full listing", "quiet_full", "quiet_full"),
            ("no change: **by state**", "quiet_full", "quiet_state"),
            ("no change, start_date: full listing", "quiet_dated_full", "quiet_dated_full"),
            ("no change, start_date: **by state**", "quiet_dated_full", "quiet_dated_state"),
            (f"{r['changes']} changes: full listing", "changed_full", "changed_full"),
            (f"{r['changes']} changes: **by state**", "changed_full", "changed_state"),
        ):
            run, base = r[key], r[full_key]
            details = f" ({run['details']} detail)" if run["details"] else ""
            lines.append(
                f"| {r['invoices']:,} | {mix} | {label} | {run['requests']}{details}"
                f" | {run['seconds']:.2f} s | {run['records']} | **{run['requests'] / base['requests']:.2f}** | "
                f"{run['seconds'] / base['seconds']:.2f} |"
            )
    lines += [
        "",
        "Cost formula (no change, averaged over a cycle of full_scan_every runs): "
        "Σ over draft, locked, partiallyPaid, dunned of max(1, ⌈count ÷ page_size⌉) + ⌈all ÷ page_size⌉ ÷ "
        "full_scan_every list requests; plus, per change, one detail request for each invoice that left the "
        "open lists and up to two pages of a targeted scan for a paid or cancelled count that moved.",
        "",
    ]
    for r in results:
        lines.append(
            f"- {r['invoices']:,} {r['mix']}: formula {r['formula']:.2f} of {r['pages']} requests "
            f"= {r['formula'] / r['pages']:.3f}; per-id states in the state {r['state_kb']:.1f} kB"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--mix", nargs="+", default=["realistic", "default"])
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--full-scan-every", type=int, default=listing.DEFAULT_FULL_SCAN_EVERY)
    parser.add_argument(
        "--start-date", default="2024-01-01", help="for the rows with start_date (about a third before)"
    )
    args = parser.parse_args(argv)
    logging.getLogger("tap-invoiz").setLevel(logging.WARNING)
    logging.getLogger("singer_sdk").setLevel(logging.WARNING)
    results = [
        bench(n, mix, args.latency_ms, args.full_scan_every, args.start_date) for mix in args.mix for n in args.invoices
    ]
    print(render(results, args.latency_ms, args.full_scan_every, args.start_date))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
