-- Reconciliation (R2/R3), to the cent: the invoice values of all customers plus the value-counting unassigned
-- invoices equal all value-counting invoices in the source (live, not draft, not cancelled) -- in amount and count.
-- Computed from staging, independently of int_invoiz__invoices. Returns a row when anything differs.
{%- set basis = value_basis() %}

with source_side as (

    select
        count(*)                                    as invoice_count,
        coalesce(sum(coalesce(total_{{ basis }}, 0)), 0) as value_amount
    from {{ ref('stg_invoiz__invoices') }}
    where not is_deleted
      and status not in ('draft', 'cancelled')

),

customer_side as (

    select
        coalesce(sum(invoice_count), 0)             as invoice_count,
        coalesce(sum(invoice_value), 0)             as value_amount
    from {{ ref('customer_values') }}

),

unassigned_side as (

    select
        count(*)                                    as invoice_count,
        coalesce(sum(value_amount), 0)              as value_amount
    from {{ ref('unassigned_invoices') }}
    where counts_toward_value

)

select
    source_side.invoice_count                                   as source_invoice_count,
    customer_side.invoice_count + unassigned_side.invoice_count as mart_invoice_count,
    source_side.value_amount                                    as source_value_amount,
    customer_side.value_amount + unassigned_side.value_amount   as mart_value_amount
from source_side
cross join customer_side
cross join unassigned_side
where source_side.invoice_count <> customer_side.invoice_count + unassigned_side.invoice_count
   or round(source_side.value_amount, 2) <> round(customer_side.value_amount + unassigned_side.value_amount, 2)
