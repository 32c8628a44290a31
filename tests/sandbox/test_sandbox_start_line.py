"""The console script's start line, read the way invoiz-sandbox/README.md tells scripts to read it (and bench.sandbox
reads it): the API URL after ``listening on``, the app URL after ``(web app``; both must answer."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from sandbox_helpers import start_line_urls

from bench.sandbox import api_url_of

SINGLE = ["--invoices", "5"]
FLEET = ["--installations", "2", "--invoices", "5"]


@pytest.mark.parametrize(
    "args,installation_id",
    [(SINGLE, "sandbox-installation"), (FLEET, "sandbox-installation-002")],
    ids=["one", "fleet"],
)
def test_the_urls_read_from_the_start_line_answer(args, installation_id):
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoiz_sandbox", "--port", "0", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        api, app = start_line_urls(line)
        assert api_url_of(line) == api
        assert api.startswith("http://127.0.0.1:") and api.endswith("/api/"), line
        token = requests.post(
            api + "auth/token",
            auth=("sandbox-key", "sandbox-secret"),
            json={"installationId": installation_id},
            timeout=10,
        ).json()["token"]
        answer = requests.get(api + "invoice", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
        assert answer["meta"]["count"] == 5
        page = requests.get(f"{app}/invoice/{answer['data'][0]['id']}", timeout=10)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_a_line_without_the_urls_is_named_not_misread():
    with pytest.raises(SystemExit, match="no start line"):
        api_url_of("Traceback (most recent call last):\n")
