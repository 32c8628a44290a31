-- Long table of customer values: one row per (e-mail, value_type). 'invoices' (Kundenwert Rechnungen) comes from
-- invoiz; every other value type comes from the seed customer_value_imports, so a new value type only adds rows.
with invoice_values as (

    select
        customer_email                  as email,
        cast('invoices' as text)        as value_type,
        sum(value_amount)               as amount,
        count(*)                        as source_row_count
    from {{ ref('int_invoiz__invoices') }}
    where is_assigned and counts_toward_value
    group by customer_email

),

imported_values as (

    select
        {{ normalize_email('email') }}  as email,
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
