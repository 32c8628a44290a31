"""What the diagnosis expects of invoiz: verdicts, report sections, and the fields and forms of the API contract."""

from __future__ import annotations

import logging

from tap_invoiz.schemas import CONTACT_FIELDS, INVOICE_FIELDS

LOGGER = logging.getLogger("tap-invoiz.diagnose")

OK, WARN, FAIL, SKIP = "✅", "⚠️", "❌", "➖"
VERDICTS = (OK, WARN, FAIL, SKIP)
SECTIONS = (
    "Authentication",
    "Paging",
    "Invoice list",
    "Invoice detail",
    "Contacts",
    "Filters",
    "Formats",
    "Latency",
    "Other endpoints",
)

#: The largest page the tap may ask for (setting page_size); the diagnosis asks for it to find a silent cap.
PROBE_LIMIT = 1000
#: docs/invoiz-api.md §3.1: the default page size is believed to be 20.
CONTRACT_DEFAULT_LIMIT = 20
#: An invoice id that no account has (fits a 32-bit integer, so a server that checks the type still looks it up).
UNKNOWN_ID = 2147483000
STATE_FILTERS = ("draft", "locked", "partiallyPaid", "paid", "dunned", "cancelled")
FILTERS = (*STATE_FILTERS, "overdue")

# -- what the contract says about fields (docs/invoiz-api.md §4 and §5) ------------------------------------------------
# The fields the tap reads come from its field tables (tap_invoiz/schemas.py), so that a field added there is
# expected here too; below are only the contract's fields that the tap has no column for.

#: Fields every invoice list row should carry (the field table's ``every_list_row`` ones).
INVOICE_LIST_EXPECTED = tuple(f.api for f in INVOICE_FIELDS if f.every_list_row)
#: §4.1 fields marked "D (L?)": the contract expects them on the detail only (open question 2).
INVOICE_LIST_MAYBE = ("positions", "payments", "history")
#: §4.1 detail fields (✅ and the 🟡 ones the web app reads) that the tap has no column for; ``payments`` feeds the
#: stream invoice_payments.
INVOICE_DETAIL_ONLY = ("contactPersonId", "payConditionData", "payments", "texts", "infoSectionCustomFields")
#: Fields the detail should carry: every field the tap reads, and the contract's detail-only ones.
INVOICE_DETAIL_EXPECTED = (*(f.api for f in INVOICE_FIELDS), *INVOICE_DETAIL_ONLY)
#: §4.1 fields the contract knows but does not expect on every answer.
INVOICE_KNOWN = (
    "deliveryPeriod",
    "printDate",
    "discount",
    "totalGrossProfit",
    "vatAmountReduced",
    "vatAmountStandard",
    "cashDiscountSetting",
    "autoDunningEnabled",
    "dunningLevel",
    "dunningRecipients",
    "overDueNotificationSent",
    "smallBusiness",
    "smallBusinessText",
    "notes",
    "offer",
    "offerId",
    "project",
    "projectId",
    "parentId",
    "recurringInvoiceId",
    "invoizPayData",
    "useAdvancedPaymentOptions",
    "useAdvancedPaymentPayPal",
    "useAdvancedPaymentTransfer",
    "hideInvoizPay",
    "letterPaperSettingId",
    "letterNumerationId",
    "columns",
    "thumbnails",
    "printCustomDocument",
    "infoSectionFields",
    # fork-only (Groflex), probably absent in Germany
    "totalDiscount",
    "additionalCharges",
    "exchangeRate",
    "baseCurrency",
    "razorpayPaymentData",
)
#: §5: customer fields, list rows and detail alike (the tap reads them all).
CONTACT_EXPECTED = tuple(f.api for f in CONTACT_FIELDS)
CONTACT_KNOWN = (
    "birthday",
    "contactType",
    "mandator",
    "vatFree",
    "outstandingAmount",
    "balance",
    "openingBalance",
    "credits",
    "debits",
    "salesVolumeData",
)
TIMESTAMP_FIELDS = ("createdAt", "updatedAt")
#: Objects whose member names are shown (one level, arrays of objects as ``name[].member``). Unknown objects are not
#: opened: their member names may be labels a user typed.
OPENED = {
    "customerData",
    "customerData.contact",
    "metaData",
    "metaData.cancellation",
    "metaData.currentDunning",
    "metaData.nextDunning",
    "positions[]",
    "positions[].metaData",
    "payments[]",
    "history[]",
    "payConditionData",
    "texts",
    "cashDiscountSetting",
    "address",
    "contactPersons[]",
}
CALENDAR_DATES = (
    "date",
    "dueToDate",
    "deliveryDate",
    "paidDate",
    "payments[].date",
    "metaData.cancellation.date",
    "metaData.currentDunning.date",
    "metaData.nextDunning.date",
)
DATE_TIMES = ("lockedAt", "sentAt", "printDate", "history[].date", "createdAt", "updatedAt")
MONEY = ("totalNet", "totalGross", "outstandingAmount", "cashDiscountTotal")
#: Loggers that would write request URLs (with ids) at DEBUG.
QUIET_LOGGERS = ("urllib3", "urllib3.connectionpool", "requests")
RATE_LIMIT_HEADERS = (
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
)
