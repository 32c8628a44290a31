"""The mapping version: a part of every row fingerprint's salt, derived from the field tables of schemas.py.

A row is re-emitted when its fingerprint changes. When the mapping from API rows to records changes (a new API field,
a renamed column, another type, a new derived column), rows whose API answer did not change must still be sent once
more, so that the new column reaches the rows already loaded. The salt makes that happen: it contains this version,
and this version is a hash of what shapes the records —

* each stream's field table (``Field(api, column, kind)``, descriptions aside), and
* each stream's schema (every column with its type, derived columns included; descriptions aside),

plus ``CONVERTERS_VERSION`` for what the tables cannot show. Adding a field therefore needs no manual step; editing a
description re-emits nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import typing as t

#: Bump by hand only when records change without a change to the field tables or schemas: a converter in
#: records.py (or a derived column's rule in streams.py) now turns the same API value into another column value.
CONVERTERS_VERSION = "1"


def _shape(node: t.Any) -> t.Any:
    """A schema without its descriptions (text for people; a change to it must not re-emit rows)."""
    if isinstance(node, dict):
        return {k: _shape(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [_shape(v) for v in node]
    return node


def compute(tables: dict[str, tuple[t.Sequence[t.Any], dict]]) -> str:
    """``CONVERTERS_VERSION`` and a hash of ``{stream: (field table, schema)}``."""
    canonical = {
        stream: {
            "fields": [[f.api, f.column, f.kind] for f in fields],
            "schema": _shape(schema),
        }
        for stream, (fields, schema) in sorted(tables.items())
    }
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:16]
    return f"{CONVERTERS_VERSION}-{digest}"


def stream_tables() -> dict[str, tuple[t.Sequence[t.Any], dict]]:
    """The field table and schema of every stream whose rows are fingerprinted."""
    from tap_invoiz import schemas  # imported when first needed, not when the tap module loads

    return {
        "invoices": (schemas.INVOICE_FIELDS, schemas.INVOICES_SCHEMA),
        "contacts": (schemas.CONTACT_FIELDS, schemas.CONTACTS_SCHEMA),
        "invoice_payments": (schemas.PAYMENT_FIELDS, schemas.PAYMENTS_SCHEMA),
    }


@functools.cache
def mapping_version() -> str:
    """The current mapping version (e.g. ``1-3f2a…``), part of the fingerprint salt."""
    return compute(stream_tables())
