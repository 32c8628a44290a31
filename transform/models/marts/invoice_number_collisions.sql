-- Invoice numbers used by more than one live invoice (R5): in two accounts, or twice in one account.
-- Invoices are never merged on the number (keys are account + id); this lists the numbers so they can be checked.
-- A view: read by the warning test on every build anyway.
{{ config(materialized='view') }}

with numbered as (

    select * from {{ ref('int_invoiz__invoices') }}
    where invoice_number is not null

)

select
    invoice_number,
    count(*)                                                            as invoice_count,
    count(distinct account)                                             as account_count,
    cast(case
        when count(distinct account) > 1 and count(*) > count(distinct account) then 'across_and_within_accounts'
        when count(distinct account) > 1 then 'across_accounts'
        else 'within_account'
    end as text)                                                        as collision_type,
    string_agg(distinct account, ', ' order by account)                 as accounts,
    string_agg(invoice_key, ', ' order by invoice_key)                  as invoice_keys,
    min(invoice_date)                                                   as first_invoice_date,
    max(invoice_date)                                                   as last_invoice_date
from numbered
group by invoice_number
having count(*) > 1
