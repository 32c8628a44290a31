-- Live invoices that belong to no customer (R2), with the reason. Drafts and cancelled invoices are listed too
-- (counts_toward_value = false); the reconciliation test uses only those with counts_toward_value.
-- A view over int_invoiz__invoices (which is incremental): nothing to build.
{{ config(materialized='view') }}

select
    invoice_key,
    account,
    invoice_id,
    invoice_number,
    invoice_type,
    invoice_date,
    unassigned_reason,
    contact_id,
    status,
    status_label,
    state,
    counts_toward_value,
    amount,
    value_amount,
    open_amount,
    paid_amount,
    uncollectible_amount,
    unclassified_amount,
    value_basis,
    currency,
    invoice_url
from {{ ref('int_invoiz__invoices') }}
where not is_assigned
