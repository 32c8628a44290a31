-- Long table of customer values: one row per (e-mail, value_type). 'invoices' (Kundenwert Rechnungen) comes from
-- invoiz; every other value type comes from the seed customer_value_imports, so a new value type only adds rows.
-- A view: the invoice totals are kept per customer incrementally, the seed is small.
{{ config(materialized='view') }}

with invoice_values as (

    select
        email,
        cast('invoices' as text)        as value_type,
        invoice_value                   as amount,
        invoice_count                   as source_row_count
    from {{ ref('int_invoiz__customer_invoice_totals') }}
    where invoice_count > 0

),

imported_values as (

    select
        -- the default collation, like every other e-mail column: a view mixing collations in a union keeps
        -- PostgreSQL from pushing a lookup by e-mail into it (customer_values read by one e-mail)
        {{ normalize_email('email') }} collate "default" as email,
        cast(trim(value_type) as text)  as value_type,
        sum(cast(amount as numeric))    as amount,
        count(*)                        as source_row_count
    from {{ ref('customer_value_imports') }}
    where {{ normalize_email('email') }} is not null
    group by 1, 2

)

select
    email,
    value_type,
    amount,
    {{ currency() }}    as currency,
    source_row_count,
    cast('invoiz' as text) as value_source
from invoice_values

union all

select
    email,
    value_type,
    amount,
    {{ currency() }}    as currency,
    source_row_count,
    cast('customer_value_imports' as text) as value_source
from imported_values
