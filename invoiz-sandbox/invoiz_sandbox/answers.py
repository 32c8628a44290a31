"""How a :class:`~invoiz_sandbox.server.Sandbox` answers a request its host routed to it: faults and latency first,
then the token, the bearer check and the list/detail bodies (under the dataset's lock), or an admin action."""

from __future__ import annotations

import base64
import binascii
import socket
import time

from .data import CONTACT_ORDER_BY, INVOICE_FILTERS, INVOICE_ORDER_BY, NotFound, SandboxError
from .host import SandboxHandler

DEFAULT_LIMIT = 20
LETTER_ELEMENTS = {
    "sender": "Muster Handwerk GmbH · Hauptstraße 1 · 10115 Berlin",
    "letterHeader": {"companyName": "Muster Handwerk GmbH", "logo": None},
    "letterFooter": [
        {"column": 1, "text": "Muster Handwerk GmbH\nHauptstraße 1\n10115 Berlin"},
        {"column": 2, "text": "Geschäftsführer: Jürgen Weiß\nAmtsgericht Berlin HRB 12345"},
        {"column": 3, "text": "IBAN DE02 1203 0000 0000 2020 51\nBIC BYLADEM1001"},
    ],
}


def _bool(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def _order_by(query: dict, supported: list[str]) -> str | None:
    """The list request's ``orderBy`` (None: the default order); a 400 when the list cannot sort by it."""
    order_by = query.get("orderBy") or None
    if order_by is not None and order_by not in supported:
        raise SandboxError(f"orderBy {order_by!r} is not supported", field="orderBy", code="INVALID")
    return order_by


class ApiAnswers:
    """The answering half of a Sandbox (part of :class:`~invoiz_sandbox.server.Sandbox`)."""

    # ------------------------------------------------------------------ API requests
    def answer_api(self, request: SandboxHandler, method, api, query):
        kind = None
        if method == "POST" and api == ["auth", "token"]:
            kind = "token"
        elif method == "GET" and api == ["invoice"]:
            kind = "invoice_list"
        elif method == "GET" and len(api) == 2 and api[0] == "invoice":
            kind = "invoice_detail"
        elif method == "GET" and api == ["customer"]:
            kind = "customer_list"
        elif method == "GET" and len(api) == 2 and api[0] == "customer":
            kind = "customer_detail"
        self.requests.hit(kind or "other")
        if kind is None:
            request.raw_body()  # drained, so keep-alive stays in sync
            return request.answer_error(
                404,
                "NotFoundError",
                f"{method} /{'/'.join(['api', *api])} is not part of the sandbox",
                {"path": [{"code": "NOT_FOUND"}]},
            )
        request.log_entry = self._request_started(kind, query)
        try:
            return self._answer(request, kind, api, query)
        finally:
            request.log_entry = None
            self._request_finished(kind)

    # ------------------------------------------------------------------ API
    def _answer(self, request: SandboxHandler, kind, api, query):
        # latency (global + fault)
        delay = self.latency_ms / 1000.0
        for f in self.faults.active(kind, "latency"):
            if f.take():
                delay += float(f.opts["ms"]) / 1000.0
        if delay > 0:
            time.sleep(delay)
        corrupt = False
        for f in self.faults.active(kind):
            if f.kind in ("latency", "token_expiry", "page_shift", "duplicate"):
                continue
            if not f.take():
                continue
            if f.kind == "connection_reset":
                request.close_connection = True
                try:
                    request.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if f.kind == "rate_limit":
                return request.answer_error(
                    429, "TooManyRequestsError", "Too many requests", headers={"Retry-After": f.opts["retry_after"]}
                )
            if f.kind == "server_error":
                return request.answer_error(int(f.opts["status"]), "InternalServerError", "Internal server error")
            if f.kind == "html_error":
                st = int(f.opts["status"])
                html = (
                    f"<html><head><title>{st} Bad Gateway</title></head><body><center><h1>{st} "
                    f"{'Bad Gateway' if st == 502 else 'Service Temporarily Unavailable'}</h1></center>"
                    "<hr><center>nginx</center></body></html>\n"
                ).encode()
                return request.answer_bytes(st, html, ctype="text/html")
            if f.kind == "slow":
                time.sleep(float(f.opts["seconds"]))
            if f.kind == "malformed_json":
                corrupt = True
        if kind == "token":
            return self._answer_token(request, corrupt)
        if not self._check_bearer(request.headers.get("Authorization"), kind):
            return request.answer_unauthorized()
        with self.dataset.lock:
            try:
                if kind == "invoice_list":
                    status, obj = 200, self._invoice_list(query)
                elif kind == "invoice_detail":
                    status, obj = 200, self._invoice_detail(api[1])
                elif kind == "customer_list":
                    status, obj = 200, self._customer_list(query)
                else:
                    status, obj = 200, self._customer_detail(api[1])
            except SandboxError as e:
                status = e.status
                if isinstance(e, NotFound) and "not_found_400" in self.variants:
                    status = 400
                name = "NotFoundError" if status == 404 else "ValidationError"
                obj = {"name": name, "message": str(e), "meta": {e.field: [{"code": e.code}]}}
        request.answer_json(status, obj, corrupt=corrupt)

    def _answer_token(self, request: SandboxHandler, corrupt):
        try:
            body = request.json_body()
        except (ValueError, UnicodeDecodeError):
            return request.answer_error(
                400, "ValidationError", "Body is not valid JSON", {"body": [{"code": "INVALID"}]}
            )
        user = pw = None
        auth = request.headers.get("Authorization") or ""
        if auth[:6].lower() == "basic ":
            try:
                user, _, pw = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = pw = None
        cred = self.credentials
        ok = (
            user == cred["api_key"]
            and pw == cred["api_key_secret"]
            and (
                not cred["installation_id"]
                or (isinstance(body, dict) and body.get("installationId") == cred["installation_id"])
            )
        )
        if not ok:
            return request.answer_bad_credentials()
        request.answer_json(200, {"token": self.issue_token()}, corrupt=corrupt)

    # ------------------------------------------------------------------ admin
    def answer_admin(self, request: SandboxHandler, method, parts):
        if method == "GET" and parts == ["stats"]:
            return request.answer_json(200, self.stats())
        if method != "POST" or len(parts) != 1:
            return request.answer_error(404, "NotFoundError", "use POST /_sandbox/<action> or GET /_sandbox/stats")
        try:
            args = request.json_body()
        except (ValueError, UnicodeDecodeError):
            return request.answer_error(
                400, "ValidationError", "Body is not valid JSON", {"body": [{"code": "INVALID"}]}
            )
        if not isinstance(args, dict):
            return request.answer_error(
                400, "ValidationError", "Body must be a JSON object", {"body": [{"code": "INVALID"}]}
            )
        action = parts[0]
        fn = self.ADMIN_ACTIONS.get(action)
        if fn is None:
            return request.answer_error(
                404,
                "NotFoundError",
                f"unknown action {action!r}",
                {"action": [{"code": "NOT_FOUND", "known": sorted(self.ADMIN_ACTIONS)}]},
            )
        try:
            result = getattr(self, fn)(**args)
        except SandboxError as e:
            return request.answer_error(
                e.status,
                "ValidationError" if e.status == 400 else "NotFoundError",
                str(e),
                {e.field: [{"code": e.code}]},
            )
        except (TypeError, ValueError) as e:
            return request.answer_error(400, "ValidationError", str(e), {"args": [{"code": "INVALID"}]})
        if hasattr(result, "__next__"):
            result = list(result)
        request.answer_json(200, {"result": result})

    # ------------------------------------------------------------------ list / detail (called under dataset.lock)
    def _paging(self, query):
        def intarg(name, default):
            raw = query.get(name)
            if raw in (None, ""):
                return default
            try:
                return int(raw)
            except ValueError:
                raise SandboxError(f"{name} must be an integer", field=name, code="NO_INTEGER") from None

        offset = intarg("offset", 0)
        limit = intarg("limit", DEFAULT_LIMIT)
        if offset < 0:
            raise SandboxError("offset must not be negative", field="offset", code="TOO_SMALL")
        if limit < 1:
            raise SandboxError("limit must be positive", field="limit", code="TOO_SMALL")
        return offset, min(limit, self.max_page_size)

    def _invoice_list(self, query):
        ds = self.dataset
        offset, limit = self._paging(query)
        order_by = _order_by(query, INVOICE_ORDER_BY)
        desc = _bool(query.get("desc", "false"))
        flt = query.get("filter") or "all"
        if flt not in INVOICE_FILTERS:
            raise SandboxError(f"filter {flt!r} is not supported", field="filter", code="INVALID")
        filter_counts = ds.invoice_filter_counts()
        if "filter_ignored" in self.variants:
            flt = "all"
        if flt == "locked" and "locked_includes_dunned" in self.variants:
            flt = "open"
            filter_counts = {**filter_counts, "locked": {"count": len(ds.invoice_order(order_by, desc, flt))}}
        order = ds.invoice_order(order_by, desc, flt)
        search = (query.get("searchText") or "").strip()
        if search:
            order = ds.search_invoices(order, search)
        # fault: duplicate row (page boundary shifted by one for the rest of this scan)
        eff = offset
        for f in self.faults.active("invoice_list", "duplicate"):
            if offset == 0 and f.state.get("active"):
                self.faults.remove(f)  # a new scan starts: the fault is used up
                continue
            if f.state.get("active") and offset > 0:
                eff = offset - 1
        detail = bool(self.variants & {"list_positions", "updated_at"})  # otherwise list fields suffice
        rows = [
            ds.render_invoice(ds.invoice_canonical(i, detail), self.variants, list_row=True)
            for i in order[eff : eff + limit]
        ]
        # while shifted, count one more row (as if one had been inserted before the offset), so a client that
        # stops at offset >= meta.count still sees every row
        count = len(order) + (1 if eff != offset else 0)
        meta = {"count": count} if "no_meta_filter" in self.variants else {"count": count, "filter": filter_counts}
        result = {"meta": meta, "data": rows}
        # page-level faults that act after a page has been served
        for f in self.faults.active("invoice_list", "duplicate"):
            f.state["pages"] = f.state.get("pages", 0) + 1
            if f.state["pages"] >= int(f.opts["after_page"]) and not f.state.get("active"):
                f.state["active"] = True
                f.fired += 1
        for f in self.faults.active("invoice_list", "page_shift"):
            f.state["pages"] = f.state.get("pages", 0) + 1
            if f.state["pages"] >= int(f.opts["after_page"]):
                f.state["inserted"] = ds.insert_before(order_by, desc, int(f.opts["insert"]))
                f.fired += 1
                self.faults.remove(f)
        return result

    def _invoice_detail(self, ident):
        ds = self.dataset
        inv = ds.render_invoice(ds.invoice_canonical(ds.inv_idx(ident)), self.variants)
        if "detail_flat" in self.variants:
            return {"meta": {}, "data": inv}
        return {"meta": {}, "data": {"invoice": inv, "letterElements": LETTER_ELEMENTS}}

    def _customer_list(self, query):
        ds = self.dataset
        offset, limit = self._paging(query)
        order_by = _order_by(query, CONTACT_ORDER_BY)
        order = ds.contact_order(order_by, _bool(query.get("desc", "false")))
        search = (query.get("searchText") or "").strip()
        if search:
            order = ds.search_contacts(order, search)
        rows = [ds.render_contact(ds.contact(i), self.variants) for i in order[offset : offset + limit]]
        return {"meta": {"count": len(order), "filter": {"all": {"count": len(order)}}}, "data": rows}

    def _customer_detail(self, ident):
        ds = self.dataset
        return {"meta": {}, "data": ds.render_contact(ds.contact(ds.con_idx(ident)), self.variants)}
