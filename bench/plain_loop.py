"""The baseline for the tap's throughput: the same list pages fetched with a plain `requests` + `json` loop.

    python -m bench.plain_loop PAGE_SIZE OUTPUT_PATH [--ahead]

Reads the API URL and the (sandbox) credentials from BENCH_API_URL, BENCH_API_KEY, BENCH_API_KEY_SECRET and
BENCH_INSTALLATION_ID (environment, not argv, so they never show in a process list). Fetches a token, then every
page of contacts and invoices in the order and with the parameters the tap uses, and writes each row as one JSON
line. Prints one JSON object: rows written and requests made. No fingerprints, no mapping, no Singer messages:
the least work that still moves every row from the API to a file.

One request in flight at a time, as the tap at max_concurrency 1. By default the loop fetches a page, writes its
rows, then asks for the next page: a plain loop's shape, and what `make bench` compares the tap with. With
``--ahead`` it asks for the next page (in a second thread) while it writes the rows of this one, as the tap's page
window does: the stricter baseline, measured to show how much of the tap's ratio comes from that overlap
(docs/BENCHMARKS.md, "Profile of the tap").
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import requests

# The tap's list requests (tap_invoiz/streams.py): contacts first, then invoices.
LISTS = (
    ("customer", {"orderBy": "number", "desc": "false"}),
    ("invoice", {"orderBy": "date", "desc": "false", "filter": "all"}),
)


def main(argv: list[str]) -> int:
    page_size, output_path = int(argv[0]), argv[1]
    ahead = "--ahead" in argv[2:]
    api_url = os.environ["BENCH_API_URL"]
    session = requests.Session()
    token = session.post(
        api_url + "auth/token",
        auth=(os.environ["BENCH_API_KEY"], os.environ["BENCH_API_KEY_SECRET"]),
        json={"installationId": os.environ["BENCH_INSTALLATION_ID"]},
        timeout=60,
    ).json()["token"]
    session.headers["Authorization"] = f"Bearer {token}"

    def page(path: str, params: dict, offset: int) -> dict:
        response = session.get(api_url + path, params={**params, "offset": offset, "limit": page_size}, timeout=60)
        response.raise_for_status()
        return json.loads(response.text)

    rows = requests_made = 0
    with open(output_path, "w", encoding="utf-8") as out, ThreadPoolExecutor(max_workers=1) as fetcher:
        for path, params in LISTS:
            offset = 0
            body = page(path, params, offset)
            while True:
                requests_made += 1
                data = body["data"]
                offset += len(data)
                more = bool(data) and offset < body["meta"]["count"]
                next_body = fetcher.submit(page, path, params, offset) if more and ahead else None
                for row in data:
                    out.write(json.dumps(row) + "\n")
                rows += len(data)
                if not more:
                    break
                body = next_body.result() if next_body is not None else page(path, params, offset)
    print(json.dumps({"rows": rows, "requests": requests_made + 1}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
