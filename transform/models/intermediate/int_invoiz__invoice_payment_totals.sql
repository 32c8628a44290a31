-- Informational payment facts per invoice from the invoice_payments child stream (live rows only).
-- Amounts in the marts do NOT come from here but from the invoice's outstanding_amount (see docs: amounts).
select
    invoice_key,
    count(*) filter (where not is_reversed and amount > 0)          as payment_count,
    max(paid_at) filter (where not is_reversed and amount > 0)      as last_payment_at,
    coalesce(sum(amount), 0)                                        as payments_net_total
from {{ ref('stg_invoiz__invoice_payments') }}
where not is_deleted
group by invoice_key
