-- Wide customer values, one row per e-mail that is an invoiz customer or has an imported value.
-- invoice_value = Kundenwert Rechnungen; total_value = Kundenwert gesamt = invoice_value + other_value.
-- A view over the incremental customer totals: overdue invoices (which depend on the date) are counted when it is
-- read, and imported values come from the seed.
{{ config(materialized='view') }}

-- CTEs read twice are NOT MATERIALIZED, so a lookup by e-mail reaches the indexes instead of every customer.
with customers as not materialized (

    select email from {{ ref('customers') }}

),

value_types as not materialized (

    select * from {{ ref('customer_value_types') }}

),

invoice_facts as (

    select * from {{ ref('int_invoiz__customer_invoice_totals') }}

),

overdue as (

    select
        customer_email                          as email,
        count(*)                                as overdue_invoice_count
    from {{ ref('int_invoiz__invoices') }}
    where is_assigned and counts_toward_value and status = 'open'
      and coalesce(due_date, invoice_date) < {{ as_of_date() }}
    group by customer_email

),

values_wide as (

    select
        email,
        sum(amount) filter (where value_type = 'invoices')      as invoice_value,
        sum(amount) filter (where value_type <> 'invoices')     as other_value,
        count(distinct value_type) filter (where value_type <> 'invoices') as other_value_type_count
    from value_types
    group by email

),

all_emails as (

    select email from customers
    union
    select email from value_types

)

select
    all_emails.email,
    customers.email is not null                                             as is_invoiz_customer,
    coalesce(values_wide.invoice_value, 0)                                  as invoice_value,
    coalesce(values_wide.other_value, 0)                                    as other_value,
    coalesce(values_wide.invoice_value, 0) + coalesce(values_wide.other_value, 0) as total_value,
    coalesce(values_wide.other_value_type_count, 0)                         as other_value_type_count,
    coalesce(invoice_facts.open_amount, 0)                                  as open_amount,
    coalesce(invoice_facts.paid_amount, 0)                                  as paid_amount,
    coalesce(invoice_facts.uncollectible_amount, 0)                         as uncollectible_amount,
    coalesce(invoice_facts.unclassified_amount, 0)                          as unclassified_amount,
    coalesce(invoice_facts.invoice_count, 0)                                as invoice_count,
    coalesce(invoice_facts.open_invoice_count, 0)                           as open_invoice_count,
    coalesce(invoice_facts.paid_invoice_count, 0)                           as paid_invoice_count,
    coalesce(overdue.overdue_invoice_count, 0)                              as overdue_invoice_count,
    invoice_facts.first_invoice_date,
    invoice_facts.last_invoice_date,
    cast('{{ value_basis() }}' as text)                                     as value_basis,
    {{ currency() }}                                                        as currency
from all_emails
left join customers
    on customers.email = all_emails.email
left join values_wide
    on values_wide.email = all_emails.email
left join invoice_facts
    on invoice_facts.email = all_emails.email
left join overdue
    on overdue.email = all_emails.email
