"""singer-sdk's standard tap tests (discovery, sync, schema and record checks) against an offline sandbox."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class
from tap_helpers import catalog_for

from invoiz_sandbox import Sandbox
from tap_invoiz.tap import TapInvoiz

# The test class is built at import time from a config, so its sandbox is started here (not by a fixture).
_SANDBOX = Sandbox(seed=7, invoices=80, today="2026-11-01").start()
atexit.register(_SANDBOX.stop)

CONFIG = {
    **_SANDBOX.credentials,
    "api_url": _SANDBOX.api_url,
    "app_url": _SANDBOX.app_url,
    "account": "standard-tests",
    "page_size": 25,
}

# invoice_payments is not selected by default (it costs detail requests); the standard tests cover it too.
# parse_env_config=False: singer-sdk's default (True) would load the nearest .env into this process's environment
# and take TAP_INVOIZ_* settings (the user's API URL and credentials) over this config.
TestTapInvoiz = get_tap_test_class(
    TapInvoiz,
    config=CONFIG,
    suite_config=SuiteConfig(),
    catalog=catalog_for(CONFIG, payments=True),
    parse_env_config=False,
)
