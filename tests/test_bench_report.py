"""`make bench` rewrites docs/BENCHMARKS.md: the sections other scripts write there must survive it."""

from bench.fleet import BEGIN, END
from bench.report import kept_sections

DOC = f"""# Benchmarks

intro

## Machine

table

## 1. Backfill against the latency floor

old figures

## 1b. Backfill at max_concurrency 8 against the latency floor

old figures

## Listing by state

listing text

## Marts at 1M rows

marts text
{BEGIN}
## Fleet: one `meltano run` per account

fleet text
{END}

## Profile of the tap

profile text

## How it is measured

- how
"""


def test_sections_of_other_scripts_are_kept_and_the_reports_own_are_not():
    kept = "\n".join(kept_sections(DOC))
    for mine in ("listing text", "marts text", "profile text"):
        assert mine in kept
    for rewritten in ("## Machine", "old figures", "## How it is measured", "fleet text", "intro"):
        assert rewritten not in kept  # the fleet section is carried over on its own, between its markers
    assert kept.index("## Listing by state") < kept.index("## Marts") < kept.index("## Profile of the tap")


def test_the_targets_count_of_invoiz_records_leaves_out_the_taps_sync_status_rows():
    """A no-change run sends no invoiz record, only the tap's two sync_status rows (one per account and stream): the
    benchmark's "records the target received" must say 0 then, as the tap's own count does."""
    from bench.runs import parse_logs

    status = '{"type": "counter", "metric": "record_count", "value": 2, "tags": {"stream": "sync_status"}}'
    invoices = '{"type": "counter", "metric": "record_count", "value": 3, "tags": {"stream": "invoices"}}'
    reader = "Reader completed processing 9 lines (2 schemas, {n} records, 0 batch manifests, 0 state messages)"
    tap = 'tap-invoiz result {"account": "a", "status": "ok", "streams": {"invoices": 0}, "records": 0}'
    assert parse_logs(tap, f"x METRIC: {status}\n{reader.format(n=2)}\n")[:2] == (0, 0)
    assert parse_logs(tap, f"x METRIC: {status}\ny METRIC: {invoices}\n{reader.format(n=5)}\n")[1] == 3
