-- Invoice totals per customer (R2/R3): every customer of int_invoiz__customer_versions, with the sums and counts
-- of its value-counting invoices (zeros when it has none). Nothing here depends on the date of the run; customer_values
-- adds what does (overdue invoices) when it is read. Incremental by customer (macros/incremental_by_key.sql).
{%- set versions = ref('int_invoiz__customer_versions') %}
{%- set changed_customers = changed_keys_in('customer_email', 'email', versions, 'customer_version',
                                           versions_key='customer_email') %}
{{ config(
    materialized='incremental',
    pre_hook="{{ delete_changed_keys('email', ref('int_invoiz__customer_versions'), 'customer_version',
                                     versions_key='customer_email') }}",
    indexes=[{'columns': ['email'], 'unique': true}],
) }}

with customers as (

    select customer_email, customer_version
    from {{ versions }}
    where {{ changed_customers }}

),

invoice_facts as (

    select
        customer_email,
        sum(value_amount)                       as invoice_value,
        sum(open_amount)                        as open_amount,
        sum(paid_amount)                        as paid_amount,
        sum(uncollectible_amount)               as uncollectible_amount,
        sum(unclassified_amount)                as unclassified_amount,
        count(*)                                as invoice_count,
        count(*) filter (where status = 'open') as open_invoice_count,
        count(*) filter (where status = 'paid') as paid_invoice_count,
        min(invoice_date)                       as first_invoice_date,
        max(invoice_date)                       as last_invoice_date
    from {{ ref('int_invoiz__invoices') }}
    where is_assigned and counts_toward_value
      -- the invoices of these customers (an assigned invoice has its contact's e-mail)
      and {{ changed_customers }}
    group by customer_email

)

select
    customers.customer_email                        as email,
    cast(coalesce(invoice_facts.invoice_value, 0) as numeric(18,4)) as invoice_value,
    cast(coalesce(invoice_facts.open_amount, 0) as numeric(18,4)) as open_amount,
    cast(coalesce(invoice_facts.paid_amount, 0) as numeric(18,4)) as paid_amount,
    cast(coalesce(invoice_facts.uncollectible_amount, 0) as numeric(18,4)) as uncollectible_amount,
    cast(coalesce(invoice_facts.unclassified_amount, 0) as numeric(18,4)) as unclassified_amount,
    coalesce(invoice_facts.invoice_count, 0)        as invoice_count,
    coalesce(invoice_facts.open_invoice_count, 0)   as open_invoice_count,
    coalesce(invoice_facts.paid_invoice_count, 0)   as paid_invoice_count,
    invoice_facts.first_invoice_date,
    invoice_facts.last_invoice_date,
    customers.customer_version
from customers
left join invoice_facts
    on invoice_facts.customer_email = customers.customer_email
