-- One row per customer (normalised e-mail of a live contact, R2) with the version of its inputs: the accounts it has
-- contacts in and their account_version. Customers span accounts, so the customer-level models rebuild exactly the
-- customers of the accounts that changed (and customers that appeared or vanished), not the other customers.
with customer_accounts as (

    select distinct customer_email, account, account_version
    from {{ ref('int_invoiz__contacts') }}
    where customer_email is not null

)

select
    customer_email,
    cast(md5(string_agg(account || '=' || coalesce(account_version, ''), ',' order by account)) as text) as customer_version
from customer_accounts
group by customer_email
