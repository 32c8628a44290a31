"""The :class:`Dataset`: seed, pools, compact per-invoice arrays, ids and clock; the rows, lists and scenario
actions come from its parts (contacts, invoices, rendering, listing, invoice_actions, contact_actions)."""

from __future__ import annotations

import datetime as dt
import functools
import math
import random
import threading
from array import array

from faker import Faker

from .contact_actions import ContactActions
from .contacts import ContactRows
from .invoice_actions import InvoiceActions
from .invoices import InvoiceRows
from .listing import Listing
from .rendering import Rendering
from .values import (
    CANCELLATION_ID_BASE,
    CONTACT_ID_BASE,
    DUE_CHOICES,
    FIXED_CITIES_DE,
    FIXED_LAST,
    INVOICE_ID_BASE,
    NEW_PAYMENT_ID_BASE,
    ST,
    STATE_DELETED,
    STATE_MIXES,
    NotFound,
    default_today,
    index_of_id,
    timestamp_text,
)


class Dataset(ContactRows, InvoiceRows, Rendering, Listing, InvoiceActions, ContactActions):
    """All sandbox data plus the scenario mutations.  Thread-safe through ``self.lock``."""

    def __init__(
        self,
        seed: int = 42,
        invoices: int = 200,
        contacts: int | None = None,
        today: str | dt.date | None = None,
        mix: str = "default",
    ):
        if invoices < 0:
            raise ValueError("invoices must be >= 0")
        if mix not in STATE_MIXES:
            raise ValueError(f"unknown mix {mix!r}; known: {sorted(STATE_MIXES)}")
        self.mix = mix
        self.seed = int(seed)
        self.n_base = int(invoices)
        self.nc_base = int(contacts) if contacts is not None else max(8, self.n_base // 5)
        if self.nc_base < 1:
            raise ValueError("contacts must be >= 1")
        if today is None:
            self.today = default_today(self.seed)
        elif isinstance(today, dt.date):
            self.today = today
        else:
            self.today = dt.date.fromisoformat(str(today)[:10])
        self.lock = threading.RLock()
        self.version = 0
        self._tick = 0  # minutes after 09:00 of "today" for mutation timestamps
        self._build_pools()
        self._build_invoices()
        # contacts
        self.c_deleted = bytearray(self.nc_base)
        self.c_over: dict[int, dict] = {}  # contact index -> canonical dict (materialised)
        self._snap_contact = functools.lru_cache(maxsize=4096)(
            functools.partial(self._gen_contact, snapshot_only=True)
        )  # read-only use
        self.nc = self.nc_base
        self._name_cache: list | None = None
        # mutation counters
        self._next_payment_id = NEW_PAYMENT_ID_BASE + 1
        self._next_cancellation_id = CANCELLATION_ID_BASE + 100000000 + 1
        self._sort_cache: dict = {}
        self._count_cache: dict = {}
        # raw API fields forced onto rows as served (bad-data tests): id -> {apiField: value}; see set_raw_fields
        self.raw_invoice_fields: dict[int, dict] = {}
        self.raw_contact_fields: dict[int, dict] = {}

    # ------------------------------------------------------------------ pools
    def _build_pools(self):
        fk = Faker("de_DE")
        fk.seed_instance(self.seed)
        self.p_first_m = sorted({fk.first_name_male() for _ in range(300)}) + ["Jörg", "Björn", "Jürgen"]
        self.p_first_f = sorted({fk.first_name_female() for _ in range(300)}) + ["Bärbel", "Jördis", "Gülşen"]
        self.p_last = sorted({fk.last_name() for _ in range(600)}) + FIXED_LAST
        forms = ["GmbH", "e.K.", "OHG", "GmbH & Co. KG"]
        self.p_company = sorted(
            {c if " " in c else f"{c} {forms[k % 4]}" for k, c in enumerate(fk.company() for _ in range(400))}
        )
        self.p_street = sorted({fk.street_address() for _ in range(600)}) + [
            "Große Straße 3",
            "Mühlenweg 12",
            "Schloßallee 7a",
        ]
        self.p_city = sorted({(fk.postcode(), fk.city()) for _ in range(400)}) + FIXED_CITIES_DE
        self.p_phone = sorted({fk.phone_number() for _ in range(400)})
        self.p_job = sorted({fk.job() for _ in range(120)})
        self.p_mail = ["gmx.de", "web.de", "t-online.de", "gmail.com", "posteo.de", "freenet.de", "outlook.de"]
        self.p_vat = [f"DE{fk.random_number(digits=9, fix_len=True)}" for _ in range(50)]

    # ------------------------------------------------------------------ invoices (compact arrays)
    def _build_invoices(self):
        n, nc = self.n_base, self.nc_base
        rnd = random.Random(self.seed * 7919 + 17)
        bits = rnd.getrandbits
        today = self.today.toordinal()
        span = max(90, min(3650, n // 2))
        start = today - span
        self.day = day = array("i", bytes(4 * n))  # int32 is plenty: ordinals, indices, numbers
        self.cust = cust = array("i", day)
        self.net = net = array("q", bytes(8 * n))
        self.gross = gross = array("q", bytes(8 * n))
        self.paid = paid = array("q", bytes(8 * n))
        self.num = num = array("i", day)
        self.due = due = bytearray(n)
        self.vat = vat = bytearray(n)
        self.state = state = bytearray(n)
        self.itype = itype = bytearray(n)
        self.cancel_no: dict[int, int] = {}
        number = 0
        n_cancel = 0
        log_lo, log_span = math.log(2000), math.log(2500000) - math.log(2000)
        mx = STATE_MIXES[self.mix]
        D, L, PP, P, DU, C = ST["draft"], ST["locked"], ST["partiallyPaid"], ST["paid"], ST["dunned"], ST["cancelled"]
        # every data set of >= 12 invoices has these cases, whatever the seed (tests rely on them)
        forced = {n - 1: D, n - 2: L, n - 3: PP, n // 2: C, n // 3: DU} if n >= 12 else {}
        backdated = n // 5 if n >= 12 else -1
        for i in range(n):
            r = bits(64)
            d = start + (i * span) // max(1, n)
            if r & 0x7F == 0 or i == backdated:  # ~0.8 % back-dated invoices
                d -= 1 + ((r >> 7) & 0x1F) + (20 if i == backdated else 0)
            day[i] = d
            u = ((r >> 12) & 0xFFFF) / 65536.0
            cust[i] = int(nc * u * u) if (r >> 28) & 1 else bits(32) % nc
            c = int(math.exp(log_lo + (((r >> 40) & 0xFFFF) / 65536.0) * log_span))
            if (r >> 56) & 3 == 0:
                c = c // 100 * 100
            net[i] = c
            v = 7 if (r >> 58) & 7 == 0 else 19
            vat[i] = v
            g = (c * (100 + v) + 50) // 100
            gross[i] = g
            dd = DUE_CHOICES[(r >> 61) & 7]
            due[i] = dd
            t = (r >> 8) & 0xF
            itype[i] = 0 if t < 13 else (1 if t == 13 else (2 if t == 14 else 3))
            age = today - d
            s = bits(16) / 65536.0
            if s < mx["draft"][0 if age <= 14 else 1]:
                st = D
            elif s > 1.0 - mx["cancelled"]:
                st = C
            else:
                s2 = bits(16) / 65536.0
                # old: nearly all settled; overdue; not yet due
                p_, pp_, du_ = mx["old"] if age > dd + 60 else mx["overdue"] if age > dd else mx["due"]
                st = P if s2 < p_ else PP if s2 < pp_ else DU if s2 < du_ else L
            st = forced.get(i, st)
            state[i] = st
            if st != D:
                number += 1
                num[i] = number
            if st == P:
                paid[i] = g
            elif st == PP:
                paid[i] = max(1, g * (20 + bits(6)) // 100)
            elif st == C:
                n_cancel += 1
                self.cancel_no[i] = n_cancel
        self.next_number = number + 1
        self.next_cancel_number = n_cancel + 1
        self.n = n
        self.i_over: dict[int, dict] = {}  # invoice index -> canonical dict (materialised)

    # ------------------------------------------------------------------ id helpers
    @staticmethod
    def inv_id(idx: int) -> int:
        return INVOICE_ID_BASE + idx + 1

    def inv_idx(self, invoice_id) -> int:
        idx = index_of_id("invoice", invoice_id, INVOICE_ID_BASE)
        if not 0 <= idx < self.n or self.state[idx] == STATE_DELETED:
            raise NotFound(f"invoice {invoice_id} not found")
        return idx

    @staticmethod
    def con_id(idx: int) -> int:
        return CONTACT_ID_BASE + idx + 1

    def con_idx(self, contact_id) -> int:
        idx = index_of_id("customer", contact_id, CONTACT_ID_BASE)
        if not 0 <= idx < self.nc or self.c_deleted[idx]:
            raise NotFound(f"customer {contact_id} not found")
        return idx

    def _rng(self, kind: int, ident: int) -> random.Random:
        return random.Random((self.seed << 48) ^ (kind << 40) ^ ident)

    # ------------------------------------------------------------------ clock
    def now_iso(self) -> str:
        """Timestamp for a mutation: today 09:00 UTC + one minute per mutation (deterministic)."""
        self._tick += 1
        return timestamp_text(self.today.toordinal(), 9 * 3600 + 60 * self._tick)

    def advance_clock(self, days: int = 1):
        with self.lock:
            self.today += dt.timedelta(days=int(days))
            self._tick = 0
            self._touch()

    def _touch(self):
        self.version += 1
        self._sort_cache.clear()
        self._count_cache.clear()
