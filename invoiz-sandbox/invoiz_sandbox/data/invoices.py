"""Invoices of the dataset: a row (positions, payments, history, customer snapshot) generated on demand from the
compact arrays and the seed, materialised when a scenario changes it."""

from __future__ import annotations

import random

from .values import (
    ARTICLES,
    CANCELLATION_ID_BASE,
    DUNNING_LEVELS,
    PAY_CONDITIONS,
    STATES,
    TITLES,
    TYPES,
    day_text,
    euros,
    gross_of,
    invoice_detail_tail,
    timestamp_text,
)


class InvoiceRows:
    """Generation of invoice rows (part of :class:`Dataset`)."""

    def _positions(self, rng: random.Random, net_cents: int, vat: int, pid_base: int) -> list:
        k = min(rng.choice((1, 1, 2, 2, 3, 4)), max(1, net_cents // 100))
        parts, rest = [], net_cents
        for _ in range(k - 1):
            share = rest * rng.randint(20, 60) // 100
            parts.append(share)
            rest -= share
        parts.append(rest)
        out = []
        for j, cents in enumerate(parts):
            title, unit, _ = rng.choice(ARTICLES)
            qty = 1
            for q in (8, 5, 4, 3, 2):
                if cents % q == 0 and cents // q >= 100 and rng.random() < 0.5:
                    qty = q
                    break
            price = cents // qty
            out.append(
                {
                    "id": pid_base + j + 1,
                    "title": title,
                    "description": "",
                    "number": f"A-{100 + j:03d}",
                    "amount": float(qty),
                    "unit": unit,
                    "priceNet": euros(price),
                    "priceGross": euros(gross_of(price, vat)),
                    "vatPercent": vat,
                    "discountPercent": 0,
                    "totalNet": euros(cents),
                    "totalGross": euros(gross_of(cents, vat)),
                    "totalNetAfterDiscount": euros(cents),
                    "totalGrossAfterDiscount": euros(gross_of(cents, vat)),
                    "showDescription": False,
                    "metaData": {
                        "type": "article",
                        "id": 3000 + j,
                        "number": f"A-{100 + j:03d}",
                        "purchasePrice": 0,
                        "calculationBase": "net",
                    },
                }
            )
        return out

    def _gen_invoice(self, idx: int, detail: bool = True) -> dict:
        """Generate a base invoice.  List fields come from one RNG stream, detail-only fields from another,
        so ``detail=False`` (list rows) is cheap and still identical to the detail's list fields."""
        iid = self.inv_id(idx)
        rng = self._rng(1, idx)  # list-level draws, fixed order
        created_s = 7 * 3600 + rng.randrange(10 * 3600)
        lock_off = rng.choice((0, 0, 0, 1, 2))
        lock_s_same, lock_s_other = created_s + 600 + rng.randrange(3600), 8 * 3600 + rng.randrange(30000)
        title = rng.choice(TITLES)
        snap_draws = (rng.random(), rng.random())
        dun_off, canc_off = rng.randrange(10), rng.randint(1, 30)
        d, st_code = self.day[idx], self.state[idx]
        state = STATES[st_code]
        net, vat, g = self.net[idx], self.vat[idx], self.gross[idx]
        dd = self.due[idx]
        today = self.today.toordinal()
        contact = self._snap_contact(self.cust[idx])  # snapshot of the contact as it was (base data; read-only)
        locked_at = None
        lock_day = None
        meta = {"cancellation": {}, "currentDunning": {}, "nextDunning": {}}
        cur = cday = None
        if state != "draft":
            lock_day = min(today, d + lock_off)
            locked_at = timestamp_text(lock_day, lock_s_same if lock_day == d else lock_s_other)
            if state == "dunned":
                cur = min(today, d + dd + 7 + dun_off)
                meta["currentDunning"] = {"date": day_text(cur), "label": DUNNING_LEVELS[0][1]}
                meta["nextDunning"] = {
                    "date": day_text(cur + 14),
                    "dunningLevel": DUNNING_LEVELS[1][0],
                    "label": DUNNING_LEVELS[1][1],
                }
            if state == "cancelled":
                cday = min(today, lock_day + canc_off)
                meta["cancellation"] = {
                    "id": CANCELLATION_ID_BASE + idx + 1,
                    "number": f"ST-{self.cancel_no.get(idx, 0):04d}",
                    "date": day_text(cday),
                    "totalNet": euros(net),
                    "totalGross": euros(g),
                }
        outstanding = 0 if state in ("paid", "cancelled") else g - self.paid[idx]
        snap = self.customer_snapshot(contact, snap_draws)
        inv = {
            "id": iid,
            "number": None if state == "draft" else f"{self.num[idx]:04d}",
            "state": state,
            "type": TYPES[self.itype[idx]],
            "title": title,
            "date": day_text(d),
            "dueToDate": day_text(d + dd),
            "lockedAt": locked_at,
            "customerId": contact["id"],
            "customerData": snap,
            "totalNet": euros(net),
            "totalGross": euros(g),
            "outstandingAmount": euros(outstanding),
            "cashDiscountTotal": 0.0,
            "metaData": meta,
            "_created": timestamp_text(d, created_s),
        }
        if not detail:
            return inv
        rd = self._rng(5, idx)  # detail-only draws
        history = [{"state": "draft", "date": inv["_created"]}]
        sent_at = paid_date = None
        payments = []
        if state != "draft":
            history.append({"state": "locked", "date": locked_at})
            if rd.random() < 0.7:
                sent_at = timestamp_text(lock_day, min(86399, int(locked_at[11:13]) * 3600 + 900))
                history.append({"state": rd.choice(("sent", "sent", "printed", "downloaded")), "date": sent_at})
            paid_cents = self.paid[idx]
            if paid_cents:
                horizon = max(1, min(today - lock_day, dd + 40))
                pay_day = min(today, lock_day + rd.randint(1, horizon))
                split = state == "paid" and rd.random() < 0.2 and paid_cents > 1000
                amounts = [paid_cents * 4 // 10, paid_cents - paid_cents * 4 // 10] if split else [paid_cents]
                days = [max(lock_day, pay_day - rd.randint(1, 20)), pay_day] if split else [pay_day]
                for k, (amt, pd) in enumerate(zip(amounts, days)):
                    done = state == "paid" and k == len(amounts) - 1
                    payments.append(
                        {
                            "id": iid * 10 + k + 1,
                            "date": day_text(pd),
                            "amount": euros(amt),
                            "type": "payment" if done else "partial",
                            "notes": "",
                            "invoiceId": iid,
                            "cancellationPaymentId": None,
                            "financeApiBankTransactionId": None,
                        }
                    )
                    history.append(
                        {
                            "state": "paid" if done else "partiallyPaid",
                            "date": timestamp_text(pd, 10 * 3600 + rd.randrange(20000)),
                        }
                    )
                if state == "paid":
                    paid_date = day_text(days[-1])
            if cur is not None:
                history.append({"state": "dunned", "date": timestamp_text(cur, 11 * 3600)})
            if cday is not None:
                history.append({"state": "cancelled", "date": timestamp_text(cday, 12 * 3600)})
        pc = PAY_CONDITIONS[dd]
        inv.update(
            {
                "deliveryDate": day_text(d),
                "deliveryPeriod": "",
                "sentAt": sent_at,
                "paidDate": paid_date,
                "printDate": None,
                "contactPersonId": snap.get("contact", {}).get("id"),
                "priceKind": "net",
                "payConditionId": pc["id"],
                "payConditionData": dict(pc),
                "positions": self._positions(rd, net, vat, iid * 100),
                "payments": payments,
                "history": history,
                "texts": {
                    "introduction": "Vielen Dank für Ihren Auftrag. Wir berechnen Ihnen folgende Leistungen:",
                    "conclusion": f"Zahlbar {'sofort' if dd == 0 else f'innerhalb von {dd} Tagen'} ohne Abzug. "
                    "Mit freundlichen Grüßen",
                },
                **invoice_detail_tail(net, g, vat, dunning_level=meta["nextDunning"].get("dunningLevel")),
            }
        )
        return inv

    def invoice_canonical(self, idx: int, detail: bool = True) -> dict:
        """Canonical invoice dict (do not mutate the result). ``detail=False``: list fields only."""
        if idx in self.i_over:
            return self.i_over[idx]
        return self._gen_invoice(idx, detail)

    def _materialise(self, idx: int) -> dict:
        if idx not in self.i_over:
            inv = self._gen_invoice(idx)
            inv["_m"] = True
            self.i_over[idx] = inv
        return self.i_over[idx]
