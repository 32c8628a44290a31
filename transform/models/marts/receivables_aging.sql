-- Receivables aging: one row per open invoice (status = open), assigned or not, with days overdue against
-- as_of_date and its bucket. Due date = due_date, or the invoice date when the invoice has none.
-- A view: the day counts are computed when it is read, so no build is needed when only the date moves on.
{{ config(materialized='view') }}

with open_invoices as (

    select
        *,
        {{ as_of_date() }}                                          as as_of_date,
        {{ as_of_date() }} - coalesce(due_date, invoice_date)       as days_overdue
    from {{ ref('int_invoiz__invoices') }}
    where status = 'open'

),

aged as (

    select
        *,
        {{ aging_bucket('days_overdue') }}                          as aging_bucket
    from open_invoices

)

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
from aged
