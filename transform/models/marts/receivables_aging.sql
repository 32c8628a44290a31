-- Receivables aging: one row per open invoice (status = open), assigned or not, with days overdue against
-- as_of_date and its bucket. Due date = due_date, or the invoice date when the invoice has none.
select
    invoice_key,
    account,
    invoice_id,
    invoice_number,
    customer_email                                                  as email,
    unassigned_reason,
    invoice_date,
    due_date,
    coalesce(due_date, invoice_date)                                as effective_due_date,
    as_of_date,
    days_overdue,
    aging_bucket,
    open_amount,
    case when aging_bucket = 'current' then open_amount else 0 end  as amount_current,
    case when aging_bucket = '1-30' then open_amount else 0 end     as amount_1_30,
    case when aging_bucket = '31-60' then open_amount else 0 end    as amount_31_60,
    case when aging_bucket = '61-90' then open_amount else 0 end    as amount_61_90,
    case when aging_bucket = '90+' then open_amount else 0 end      as amount_over_90,
    state,
    state_label,
    current_dunning_label,
    value_basis,
    currency,
    invoice_url
from {{ ref('int_invoiz__invoices') }}
where status = 'open'
