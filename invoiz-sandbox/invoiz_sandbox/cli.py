"""The ``invoiz-sandbox`` console script: one :class:`~invoiz_sandbox.server.Sandbox`, or with ``--installations`` a
:class:`~invoiz_sandbox.multi_tenant.FleetSandbox`, on 127.0.0.1 until SIGTERM/SIGINT.

It prints one line when ready (``Host.start_line``): scripts read the API URL after ``listening on`` and the app URL
after ``(web app``. Credentials and tokens are never logged.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .data import STATE_MIXES
from .multi_tenant import FleetSandbox
from .server import DEMO_CREDENTIALS, VARIANTS, Sandbox


def main(argv=None):
    cred = DEMO_CREDENTIALS
    p = argparse.ArgumentParser(
        prog="invoiz-sandbox",
        description="Local invoiz API sandbox with German demo data, on 127.0.0.1 only. Ctrl-C stops it.",
        epilog=(
            "It accepts these credentials (set them as the tap's settings, e.g. in .env):\n"
            f"  TAP_INVOIZ_API_KEY={cred['api_key']}\n  TAP_INVOIZ_API_KEY_SECRET={cred['api_key_secret']}\n"
            f"  TAP_INVOIZ_INSTALLATION_ID={cred['installation_id']}\n"
            "  TAP_INVOIZ_API_URL=<the API URL it prints>  TAP_INVOIZ_APP_URL=<the app URL it prints>"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=0, help="TCP port (0 = a free port)")
    p.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seed of the generated data: the same seed gives the same invoices and contacts (default 42)",
    )
    p.add_argument(
        "--invoices",
        type=int,
        default=None,
        help="number of invoices generated (default 200); with --installations: per installation "
        "(default: a realistic size distribution)",
    )
    p.add_argument("--contacts", type=int, default=None, help="default: max(8, invoices // 5)")
    p.add_argument("--latency-ms", type=float, default=0, help="delay added to every answer, in milliseconds")
    p.add_argument("--max-page-size", type=int, default=500, help="largest list page served, like invoiz's cap")
    p.add_argument(
        "--variant", action="append", default=[], choices=sorted(VARIANTS), help="contract variant (repeatable)"
    )
    p.add_argument(
        "--mix",
        default="default",
        choices=sorted(STATE_MIXES),
        help="state mix of the generated invoices (realistic: ≈ 80 %% paid, ≈ 4 %% cancelled)",
    )
    p.add_argument("--today", default=None, help="the sandbox clock's date, YYYY-MM-DD (default: from the seed)")
    p.add_argument(
        "--installations",
        type=int,
        default=None,
        help="serve N installations (ids sandbox-installation-001 …), each with its own dataset; "
        "see invoiz_sandbox/multi_tenant.py",
    )
    p.add_argument("--scale", type=float, default=1.0, help="with --installations: multiplies the size distribution")
    args = p.parse_args(argv)
    common = {
        "seed": args.seed,
        "contacts": args.contacts,
        "today": args.today,
        "latency_ms": args.latency_ms,
        "max_page_size": args.max_page_size,
        "port": args.port,
        "mix": args.mix,
    }
    if args.installations:
        if args.variant:
            p.error("--variant applies to one installation; set variants per installation through the admin endpoint")
        sb = FleetSandbox(installations=args.installations, invoices=args.invoices, scale=args.scale, **common)
    else:
        invoices = 200 if args.invoices is None else args.invoices
        sb = Sandbox(invoices=invoices, variants=args.variant, **common)
    stop = threading.Event()

    def _stop(*_):
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sb.start()
    print(sb.start_line(), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sb.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
