-- The ticket view (R7): per customer e-mail every invoice of that customer (all live invoices assigned to the
-- e-mail, drafts and cancelled ones included and flagged), with the customer's values alongside.
-- A view: day counts are computed when it is read (the helpdesk panel reads one e-mail at a time, through the
-- index on int_invoiz__invoices.customer_email).
{{ config(materialized='view') }}

with invoices as (

    select
        *,
        {{ as_of_date() }}                                                          as as_of_date,
        {{ as_of_date() }} - invoice_date                                           as days_since_invoice_date,
        case when status = 'open'
             then {{ as_of_date() }} - coalesce(due_date, invoice_date) end         as days_overdue
    from {{ ref('int_invoiz__invoices') }}
    where is_assigned

),

customer_values as (

    select * from {{ ref('customer_values') }}

)

select
    invoices.customer_email             as email,
    invoices.invoice_key,
    invoices.account,
    invoices.invoice_id,
    invoices.invoice_number,
    invoices.invoice_type,
    invoices.title,
    invoices.invoice_date,
    invoices.due_date,
    invoices.days_since_invoice_date,
    invoices.as_of_date,
    invoices.status,
    invoices.status_label,
    invoices.state,
    invoices.state_label,
    invoices.counts_toward_value,
    invoices.amount,
    invoices.open_amount,
    invoices.paid_amount,
    invoices.total_net,
    invoices.total_gross,
    invoices.value_basis,
    invoices.currency,
    invoices.days_overdue,
    invoices.paid_date,
    invoices.last_payment_at,
    invoices.current_dunning_label,
    invoices.invoice_url,
    customer_values.invoice_value       as customer_invoice_value,
    customer_values.total_value         as customer_total_value,
    customer_values.open_amount         as customer_open_amount
from invoices
left join customer_values
    on customer_values.email = invoices.customer_email
