"""Scenario actions on invoices: create, lock, pay, dun, cancel, delete, update — each keeps the compact arrays
right, so that lists, filters and counts follow."""

from __future__ import annotations

import datetime as dt

from .values import (
    DUNNING_LEVELS,
    OPEN_STATES,
    PAY_CONDITIONS,
    ST,
    STATE_DELETED,
    TYPES,
    NotFound,
    SandboxError,
    euros,
    gross_of,
    invoice_detail_tail,
)


class InvoiceActions:
    """What an invoiz user does to invoices (part of :class:`Dataset`)."""

    def _add_history(self, inv, state):
        inv["history"].append({"state": state, "date": self.now_iso()})
        inv["_updated"] = inv["history"][-1]["date"]

    def _sync_arrays(self, idx, inv):
        self.state[idx] = ST[inv["state"]]
        self.paid[idx] = sum(round(p["amount"] * 100) for p in inv["payments"] if not p.get("cancellationPaymentId"))
        self._touch()

    def _recompute(self, idx, inv):
        if inv["state"] in ("draft", "cancelled"):
            self._sync_arrays(idx, inv)
            return
        gross = round(inv["totalGross"] * 100)
        paid = sum(round(p["amount"] * 100) for p in inv["payments"] if not p.get("cancellationPaymentId"))
        out = max(0, gross - paid)
        inv["outstandingAmount"] = euros(out)
        old = inv["state"]
        if out == 0:
            new = "paid"
        elif old == "dunned" or inv["metaData"].get("currentDunning"):
            new = "dunned"
        elif paid > 0:
            new = "partiallyPaid"
        else:
            new = "locked"
        if new == "paid":
            active = [p["date"] for p in inv["payments"] if not p.get("cancellationPaymentId")]
            inv["paidDate"] = max(active) if active else self.today.isoformat()
            inv["metaData"]["nextDunning"] = {}
            inv["dunningLevel"] = None
        else:
            inv["paidDate"] = None
        if new != old:
            inv["state"] = new
            self._add_history(inv, new)
        else:
            inv["_updated"] = self.now_iso()
        self._sync_arrays(idx, inv)

    def create_invoice(
        self,
        customer_id=None,
        state="locked",
        amount=None,
        date=None,
        due_days=14,
        title=None,
        vat=19,
        type="invoice",
        net=None,
    ) -> int:
        """Create an invoice (optionally back-dated) and bring it into ``state``. Returns its id."""
        if state not in ST:
            raise SandboxError(f"unknown state {state!r}", field="state")
        if type not in TYPES:
            raise SandboxError(f"unknown type {type!r}", field="type")
        with self.lock:
            if customer_id is None:
                cidx = self.version % self.nc
                while self.c_deleted[cidx]:
                    cidx = (cidx + 1) % self.nc
            else:
                cidx = self.con_idx(customer_id)
            contact = self.contact(cidx)
            d = dt.date.fromisoformat(str(date)[:10]) if date else self.today
            if isinstance(date, dt.date):
                d = date
            vat = int(vat)
            if net is not None:
                net_c = round(float(net) * 100)
                gross_c = gross_of(net_c, vat)
            elif amount is not None:
                gross_c = round(float(amount) * 100)
                net_c = round(gross_c * 100 / (100 + vat))
            else:
                net_c = 10000 + (self.version * 3137) % 200000
                gross_c = gross_of(net_c, vat)
            if gross_c <= 0:
                raise SandboxError("amount must be positive", field="amount", code="NOT_POSITIVE")
            idx = self.n
            iid = self.inv_id(idx)
            rng = self._rng(3, idx)
            dd = int(due_days)
            pc = dict(
                PAY_CONDITIONS.get(
                    dd, {"id": 9, "name": f"{dd} Tage netto", "dueDays": dd, "isBasic": False, "isInstant": dd == 0}
                )
            )
            now = self.now_iso()
            snap = self.customer_snapshot(contact, None)
            inv = {
                "id": iid,
                "number": None,
                "state": "draft",
                "type": type,
                "title": title if title is not None else "Rechnung",
                "date": d.isoformat(),
                "dueToDate": (d + dt.timedelta(days=dd)).isoformat(),
                "deliveryDate": d.isoformat(),
                "deliveryPeriod": "",
                "lockedAt": None,
                "sentAt": None,
                "paidDate": None,
                "printDate": None,
                "customerId": contact["id"],
                "customerData": snap,
                "contactPersonId": None,
                "totalNet": euros(net_c),
                "totalGross": euros(gross_c),
                "outstandingAmount": euros(gross_c),
                "cashDiscountTotal": 0.0,
                "priceKind": "net",
                "payConditionId": pc["id"],
                "payConditionData": pc,
                "positions": self._positions(rng, net_c, vat, iid * 100),
                "payments": [],
                "history": [{"state": "draft", "date": now}],
                "metaData": {"cancellation": {}, "currentDunning": {}, "nextDunning": {}},
                "texts": {"introduction": "Vielen Dank für Ihren Auftrag.", "conclusion": "Mit freundlichen Grüßen"},
                **invoice_detail_tail(net_c, gross_c, vat, dunning_level=None),
                "_created": now,
                "_updated": now,
                "_m": True,
            }
            self.day.append(d.toordinal())
            self.cust.append(cidx)
            self.net.append(net_c)
            self.gross.append(gross_c)
            self.paid.append(0)
            self.num.append(0)
            self.due.append(max(0, min(255, dd)))
            self.vat.append(vat)
            self.state.append(ST["draft"])
            self.itype.append(TYPES.index(type))
            self.n += 1
            self.i_over[idx] = inv
            self._touch()
            if state != "draft":
                self.lock_invoice(iid)
            if state == "paid":
                self.pay(iid)
            elif state == "partiallyPaid":
                self.pay(iid, amount=round(gross_c / 200.0, 2) or 0.01)
            elif state == "dunned":
                self.dun(iid)
            elif state == "cancelled":
                self.cancel(iid)
            return iid

    def lock_invoice(self, invoice_id):
        """Finalise a draft: assigns the next number and lockedAt."""
        with self.lock:
            idx = self.inv_idx(invoice_id)
            inv = self._materialise(idx)
            if inv["state"] != "draft":
                raise SandboxError("only drafts can be locked", field="state", code="NOT_ALLOWED")
            number = self.next_number
            self.next_number += 1
            self.num[idx] = number
            inv["number"] = f"{number:04d}"
            inv["state"] = "locked"
            self._add_history(inv, "locked")
            inv["lockedAt"] = inv["history"][-1]["date"]
            self._sync_arrays(idx, inv)
            return inv["id"]

    def _invoice_that_can_be(self, done: str, invoice_id, states: tuple[str, ...]) -> tuple[int, dict]:
        """The invoice's index and materialised row, if it is in one of ``states``; else SandboxError NOT_ALLOWED."""
        idx = self.inv_idx(invoice_id)
        inv = self._materialise(idx)
        if inv["state"] not in states:
            raise SandboxError(f"invoice in state {inv['state']} cannot be {done}", field="state", code="NOT_ALLOWED")
        return idx, inv

    def pay(self, invoice_id, amount=None, type=None, date=None, notes=""):
        """Record a payment (amount=None → the full outstanding amount). Returns the payment id."""
        with self.lock:
            idx, inv = self._invoice_that_can_be("paid", invoice_id, OPEN_STATES)
            out = round(inv["outstandingAmount"] * 100)
            cents = out if amount is None else round(float(amount) * 100)
            if cents <= 0:
                raise SandboxError("amount must be positive", field="amount", code="NOT_POSITIVE")
            if cents > out:
                raise SandboxError("amount exceeds the outstanding amount", field="amount", code="TOO_LARGE")
            pid = self._next_payment_id
            self._next_payment_id += 1
            ptype = type or ("payment" if cents == out else "partial")
            inv["payments"].append(
                {
                    "id": pid,
                    "date": str(date)[:10] if date else self.today.isoformat(),
                    "amount": euros(cents),
                    "type": ptype,
                    "notes": notes,
                    "invoiceId": inv["id"],
                    "cancellationPaymentId": None,
                    "financeApiBankTransactionId": None,
                }
            )
            self._recompute(idx, inv)
            return pid

    def partly_pay(self, invoice_id, amount=None, **kw):
        """A partial payment (default: half of the outstanding amount)."""
        with self.lock:
            idx = self.inv_idx(invoice_id)
            inv = self.invoice_canonical(idx)
            out = round(inv["outstandingAmount"] * 100)
            if amount is None:
                amount = max(1, out // 2) / 100.0
            if round(float(amount) * 100) >= out:
                raise SandboxError(
                    "a partial payment must be less than the outstanding amount", field="amount", code="TOO_LARGE"
                )
            return self.pay(invoice_id, amount=amount, type="partial", **kw)

    def revert_payment(self, invoice_id, payment_id=None):
        """Revert (cancel) a payment: it gets cancellationPaymentId; state/outstanding are recomputed."""
        with self.lock:
            idx = self.inv_idx(invoice_id)
            inv = self._materialise(idx)
            if inv["state"] == "cancelled":
                raise SandboxError(
                    "payments of a cancelled invoice cannot be reverted", field="state", code="NOT_ALLOWED"
                )
            active = [p for p in inv["payments"] if not p.get("cancellationPaymentId")]
            if payment_id is not None:
                active = [p for p in active if p["id"] == int(payment_id)]
            if not active:
                raise NotFound("no such active payment", field="paymentId")
            p = active[-1]
            p["cancellationPaymentId"] = self._next_payment_id
            self._next_payment_id += 1
            self._recompute(idx, inv)
            return p["id"]

    def dun(self, invoice_id):
        """Send the next dunning level (Zahlungserinnerung → 1. Mahnung → …); state becomes dunned."""
        with self.lock:
            idx, inv = self._invoice_that_can_be("dunned", invoice_id, OPEN_STATES)
            cur = inv["metaData"].get("currentDunning") or {}
            labels = [lab for _, lab in DUNNING_LEVELS]
            level = labels.index(cur["label"]) + 1 if cur.get("label") in labels else 0
            level = min(level, len(DUNNING_LEVELS) - 1)
            inv["metaData"]["currentDunning"] = {"date": self.today.isoformat(), "label": DUNNING_LEVELS[level][1]}
            if level + 1 < len(DUNNING_LEVELS):
                nxt = DUNNING_LEVELS[level + 1]
                inv["metaData"]["nextDunning"] = {
                    "date": (self.today + dt.timedelta(days=14)).isoformat(),
                    "dunningLevel": nxt[0],
                    "label": nxt[1],
                }
                inv["dunningLevel"] = nxt[0]
            else:
                inv["metaData"]["nextDunning"] = {}
            inv["state"] = "dunned"
            self._add_history(inv, "dunned")
            self._sync_arrays(idx, inv)
            return inv["id"]

    def cancel(self, invoice_id):
        """Cancel (Storno): state cancelled, outstanding 0, metaData.cancellation {id, number, date, totals}."""
        with self.lock:
            idx, inv = self._invoice_that_can_be("cancelled", invoice_id, (*OPEN_STATES, "paid"))
            cid = self._next_cancellation_id
            self._next_cancellation_id += 1
            number = self.next_cancel_number
            self.next_cancel_number += 1
            inv["metaData"]["cancellation"] = {
                "id": cid,
                "number": f"ST-{number:04d}",
                "date": self.today.isoformat(),
                "totalNet": inv["totalNet"],
                "totalGross": inv["totalGross"],
            }
            inv["metaData"]["nextDunning"] = {}
            inv["outstandingAmount"] = 0.0
            inv["state"] = "cancelled"
            self._add_history(inv, "cancelled")
            self._sync_arrays(idx, inv)
            return cid

    def delete_invoice(self, invoice_id, finalised=False):
        """Delete a draft; with ``finalised=True`` also a locked or dunned invoice (the web app's "cancel/delete"
        on unpaid finalised invoices sends ``DELETE invoice/{id}``, docs/invoiz-api.md §6.1). Paid, partially paid and
        cancelled invoices are never deleted."""
        with self.lock:
            idx = self.inv_idx(invoice_id)
            inv = self.invoice_canonical(idx)
            allowed = ("draft", "locked", "dunned") if finalised else ("draft",)
            if inv["state"] not in allowed:
                raise SandboxError(
                    "only drafts (and, finalised=True, locked or dunned invoices) can be deleted",
                    field="state",
                    code="NOT_ALLOWED",
                )
            self.state[idx] = STATE_DELETED
            self.i_over.pop(idx, None)
            self._touch()
            return int(invoice_id)

    def update_invoice(self, invoice_id, **fields):
        """Edit a draft (title, amount/net, date, due_days, customer_id). Finalised invoices are immutable."""
        with self.lock:
            idx = self.inv_idx(invoice_id)
            inv = self._materialise(idx)
            if inv["state"] != "draft":
                raise SandboxError("finalised invoices cannot be edited", field="state", code="NOT_ALLOWED")
            vat = self.vat[idx]
            if "title" in fields:
                inv["title"] = fields.pop("title")
            if "date" in fields:
                d = dt.date.fromisoformat(str(fields.pop("date"))[:10])
                inv["date"] = inv["deliveryDate"] = d.isoformat()
                inv["dueToDate"] = (d + dt.timedelta(days=self.due[idx])).isoformat()
                self.day[idx] = d.toordinal()
            if "due_days" in fields:
                dd = int(fields.pop("due_days"))
                self.due[idx] = dd
                inv["dueToDate"] = (dt.date.fromisoformat(inv["date"]) + dt.timedelta(days=dd)).isoformat()
            if "amount" in fields or "net" in fields:
                if "net" in fields:
                    net_c = round(float(fields.pop("net")) * 100)
                    gross_c = gross_of(net_c, vat)
                else:
                    gross_c = round(float(fields.pop("amount")) * 100)
                    net_c = round(gross_c * 100 / (100 + vat))
                self.net[idx], self.gross[idx] = net_c, gross_c
                inv["totalNet"], inv["totalGross"], inv["outstandingAmount"] = (
                    euros(net_c),
                    euros(gross_c),
                    euros(gross_c),
                )
                inv["positions"] = self._positions(self._rng(4, idx), net_c, vat, inv["id"] * 100)
            if "customer_id" in fields:
                cidx = self.con_idx(fields.pop("customer_id"))
                self.cust[idx] = cidx
                inv["customerId"] = self.con_id(cidx)
                inv["customerData"] = self.customer_snapshot(self.contact(cidx), None)
            if fields:
                raise SandboxError(f"unknown fields {sorted(fields)}", field="fields")
            inv["_updated"] = self.now_iso()
            self._sync_arrays(idx, inv)
            return inv["id"]
