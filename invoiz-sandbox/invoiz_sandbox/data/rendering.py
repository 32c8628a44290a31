"""How a canonical row is served: date format, contract variants and forced raw fields."""

from __future__ import annotations

import copy

from .values import (
    SandboxError,
    render_date,
    unchanged,
)


class Rendering:
    """Canonical row → API JSON (part of :class:`Dataset`)."""

    def render_invoice(self, inv: dict, variants, *, list_row: bool = False) -> dict:
        # generated rows are fresh objects; only materialised (stored) rows must be copied
        cp = copy.deepcopy if inv.get("_m") else unchanged
        fmt = (
            "date_only"
            if "date_only" in variants
            else "berlin_midnight"
            if "berlin_midnight" in variants
            else "utc_midnight"
        )
        if list_row:
            keys = [
                "id",
                "number",
                "state",
                "type",
                "title",
                "date",
                "dueToDate",
                "lockedAt",
                "customerId",
                "customerData",
                "totalNet",
                "totalGross",
                "outstandingAmount",
                "cashDiscountTotal",
                "metaData",
            ]
            if "lean_list" in variants:
                keys = [k for k in keys if k not in ("title", "lockedAt")]
            if "list_positions" in variants:
                keys.append("positions")
            out = {k: cp(inv[k]) for k in keys}
        else:
            out = {k: cp(v) for k, v in inv.items() if not k.startswith("_")}
        for k in ("date", "dueToDate", "deliveryDate", "paidDate"):
            if k in out:
                out[k] = render_date(out[k], fmt)
        for p in out.get("payments") or []:
            p["date"] = render_date(p.get("date"), fmt)
        for k in ("cancellation", "currentDunning", "nextDunning"):
            m = out["metaData"].get(k)
            if m and m.get("date"):
                m["date"] = render_date(m["date"], fmt)
        if out.get("state") == "draft" and "draft_number_empty" in variants:
            out["number"] = ""
        if "updated_at" in variants:
            out["createdAt"] = inv.get("_created")
            hist = [h["date"] for h in inv.get("history") or []]
            out["updatedAt"] = inv.get("_updated") or max(hist + [inv.get("_created") or ""])
        if "extra_fields" in variants:
            out["currency"] = "EUR"
            out["isMigrated"] = False
            out["customFields"] = {"kostenstelle": f"KST-{inv['id'] % 7}"}
        raw = self.raw_invoice_fields.get(inv["id"])
        if raw:
            out.update(copy.deepcopy(raw))
        return out

    def render_contact(self, c: dict, variants) -> dict:
        cp = copy.deepcopy if c.get("_m") else unchanged
        out = {k: cp(v) for k, v in c.items() if not k.startswith("_")}
        if "iso_country" in variants and isinstance(out.get("address"), dict):
            a = out["address"]
            out["address"] = {("isoCountry" if k == "countryIso" else k): v for k, v in a.items()}
        if "no_customer_email" in variants:
            out.pop("email", None)
        if "updated_at" in variants:
            out["createdAt"] = c.get("_created")
            out["updatedAt"] = c.get("_updated") or c.get("_created")
        if "extra_fields" in variants:
            out["isArchived"] = False
            out["lastActivity"] = c.get("_updated") or c.get("_created")
        raw = self.raw_contact_fields.get(c["id"])
        if raw:
            out.update(copy.deepcopy(raw))
        return out

    def set_raw_fields(self, kind: str, ident, fields: dict) -> int:
        """Force raw API fields (any JSON value, also wrong types, NUL characters, unknown names; ``None`` = JSON
        null) onto one invoice or contact exactly as list rows and detail answers serve them. Bookkeeping (state,
        amounts, sort orders, filter counts) is left alone: this is bad data *from the API*, for tests of the client.
        ``fields=None`` removes the overrides of that row."""
        if kind not in ("invoice", "contact"):
            raise SandboxError("kind must be invoice or contact", field="kind")
        if fields is not None and (not isinstance(fields, dict) or "id" in fields):
            raise SandboxError("fields must be an object without id", field="fields")
        with self.lock:
            if kind == "invoice":
                row_id, store = self.inv_id(self.inv_idx(ident)), self.raw_invoice_fields
            else:
                row_id, store = self.con_id(self.con_idx(ident)), self.raw_contact_fields
            if fields is None:
                store.pop(row_id, None)
            else:
                store.setdefault(row_id, {}).update(copy.deepcopy(fields))
            self._touch()
            return row_id
