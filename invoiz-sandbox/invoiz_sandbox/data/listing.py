"""List queries over the compact arrays: order, filter, per-state counts and search."""

from __future__ import annotations

from array import array

from .values import (
    CUSTOMER_NUMBER_BASE,
    INVOICE_FILTERS,
    OPEN_CODES,
    ST,
    STATE_DELETED,
    TYPES,
    SandboxError,
)


class Listing:
    """Sorting, filtering, counting and searching without generating rows (part of :class:`Dataset`)."""

    def _inv_key_fn(self, order_by: str):
        if order_by in (None, "", "id"):
            return None
        if order_by == "date":
            return self.day.__getitem__
        if order_by == "dueToDate":
            day, due = self.day, self.due
            return lambda i: day[i] + due[i]
        if order_by == "totalNet":
            return self.net.__getitem__
        if order_by == "totalGross":
            return self.gross.__getitem__
        if order_by == "number":
            return self.num.__getitem__
        if order_by == "type":
            t = self.itype
            return lambda i: TYPES[t[i]]
        if order_by == "customerData.name":
            names = self._contact_names()
            cust, over = self.cust, self.i_over

            def key(i):
                inv = over.get(i)
                return (inv["customerData"]["name"] if inv else names[cust[i]]).casefold()

            return key
        raise SandboxError(f"orderBy {order_by!r} is not supported", field="orderBy", code="INVALID")

    def _contact_names(self) -> list:
        if self._name_cache is None:  # base names only: invoice snapshots never change
            self._name_cache = [self._base_name(i) for i in range(self.nc_base)]
        return self._name_cache

    def _base_name(self, idx):
        if idx >= self.nc_base:
            return self.c_over[idx]["name"]
        _, kind, _, first, last, company = self._contact_core(idx)
        return company if kind == "company" else f"{first} {last}"

    def _filter_pred(self, flt: str):
        state, today = self.state, self.today.toordinal()
        if flt == "all":
            return lambda i: state[i] != STATE_DELETED
        if flt == "open":  # internal: locked, partiallyPaid, dunned (variant locked_includes_dunned)
            return lambda i: state[i] in OPEN_CODES
        if flt == "overdue":
            day, due = self.day, self.due
            return lambda i: state[i] in OPEN_CODES and day[i] + due[i] < today
        code = ST.get(flt)
        if code is None:
            raise SandboxError(f"filter {flt!r} is not supported", field="filter", code="INVALID")
        return lambda i: state[i] == code

    def invoice_order(self, order_by, desc, flt) -> array:
        key = ("inv", order_by or "id", bool(desc), flt)
        hit = self._sort_cache.get(key)
        if hit is not None:
            return hit
        kf = self._inv_key_fn(order_by)
        pred = self._filter_pred(flt)
        if kf is None:
            idxs = range(self.n - 1, -1, -1) if desc else range(self.n)
            res = array("i", (i for i in idxs if pred(i)))
        else:
            if flt == "all":
                cand = (
                    [i for i in range(self.n) if self.state[i] != STATE_DELETED]
                    if self.state.count(STATE_DELETED)
                    else list(range(self.n))
                )
            else:
                cand = [i for i in range(self.n) if pred(i)]
            cand.sort(key=kf, reverse=bool(desc))
            res = array("i", cand)
        self._sort_cache[key] = res
        return res

    def invoice_filter_counts(self) -> dict:
        hit = self._count_cache.get("inv")
        if hit is not None:
            return hit
        st = self.state
        counts = {f: {"count": st.count(ST[f])} for f in INVOICE_FILTERS if f in ST}
        counts["all"] = {"count": self.n - st.count(STATE_DELETED)}
        today = self.today.toordinal()
        day, due = self.day, self.due
        counts["overdue"] = {"count": sum(1 for i in range(self.n) if st[i] in OPEN_CODES and day[i] + due[i] < today)}
        ordered = {f: counts[f] for f in INVOICE_FILTERS}
        self._count_cache["inv"] = ordered
        return ordered

    def search_invoices(self, order: array, text: str) -> list:
        """searchText: case-insensitive substring of the invoice number or the recipient name."""
        t = text.casefold()
        out = []
        for i in order:
            inv = self.i_over.get(i)
            if inv is not None:
                hay = f"{inv.get('number') or ''} {inv['customerData'].get('name', '')}"
            else:
                hay = (
                    f"{self.num[i]:04d} {self._base_name(self.cust[i])}"
                    if self.num[i]
                    else self._base_name(self.cust[i])
                )
            if t in hay.casefold():
                out.append(i)
        return out

    def contact_order(self, order_by, desc) -> array:
        key = ("con", order_by or "id", bool(desc))
        hit = self._sort_cache.get(key)
        if hit is not None:
            return hit
        cand = [i for i in range(self.nc) if not self.c_deleted[i]]
        if order_by in (None, "", "id"):
            if desc:
                cand.reverse()
        elif order_by == "name":
            cand.sort(key=lambda i: self.contact_name(i).casefold(), reverse=bool(desc))
        elif order_by == "number":
            cand.sort(key=lambda i: str(CUSTOMER_NUMBER_BASE + i + 1), reverse=bool(desc))
        else:
            raise SandboxError(f"orderBy {order_by!r} is not supported", field="orderBy", code="INVALID")
        res = array("l", cand)
        self._sort_cache[key] = res
        return res

    def search_contacts(self, order: array, text: str) -> list:
        t = text.casefold()
        out = []
        for i in order:
            c = self.contact(i)
            if t in f"{c['number']} {c['name']} {c.get('email') or ''}".casefold():
                out.append(i)
        return out
