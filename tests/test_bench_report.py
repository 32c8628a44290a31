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
