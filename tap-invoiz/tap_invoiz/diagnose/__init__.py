"""``tap-invoiz --diagnose``: a read-only first contact with an invoiz account.

Eighteen requests — the token, the first page of each list with and without ``limit``, one page per invoice filter
with ``limit=1``, one invoice and one contact detail, one unknown id, a request with a bad token, the payment
conditions — and a Markdown report of how this invoiz answers compared with the contract the tap was built on
(field names and JSON types, envelopes, paging, filters, date and id forms, the not-found form, auth, latency), with a
verdict per item:

* ✅ as expected;
* ⚠️ differs, but the tap handles it (the line says how);
* ❌ blocks a correct sync (the line says what to do);
* ➖ could not be checked on this account (e.g. no draft invoices).

Exit status: 0 (nothing ❌), 1 (something ❌), 2 (cannot connect or authenticate; the message names the setting).

Nothing secret or personal goes into the report or the log: no credential, token, name, e-mail, address, amount or
invoice number — values are never copied, only field names, JSON types, forms (``YYYY-MM-DD``), counts and HTTP
statuses. Ids appear only as counts. Only GET requests are sent, plus the token POST.
"""

from __future__ import annotations

from tap_invoiz.diagnose.contract import FAIL, OK, SKIP, WARN
from tap_invoiz.diagnose.forms import token_form
from tap_invoiz.diagnose.report import Finding, Report
from tap_invoiz.diagnose.run import Diagnosis, config_problems, diagnose

__all__ = ["FAIL", "OK", "SKIP", "WARN", "Diagnosis", "Finding", "Report", "config_problems", "diagnose", "token_form"]
