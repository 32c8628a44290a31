-- Live contacts with a valid e-mail, ranked within their customer (= normalised e-mail, across accounts).
-- contact_rank = 1 is the contact whose fields the customer shows (R8):
--   1. the contact that received the customer's most recent value-counting invoice
--      (latest invoice_date, then highest invoice_id, then account);
--   2. contacts without such invoices after that;
--   3. ties: account ascending, then the highest contact_id (the most recently created contact in invoiz).
-- Incremental by customer (macros/incremental_by_key.sql): a customer is ranked again when an account it has
-- contacts in changed.
{%- set versions = ref('int_invoiz__customer_versions') %}
{%- set changed_customers = changed_keys_in('customer_email', 'customer_email', versions, 'customer_version') %}
{{ config(
    materialized='incremental',
    pre_hook="{{ delete_changed_keys('customer_email', ref('int_invoiz__customer_versions'), 'customer_version') }}",
    indexes=[{'columns': ['customer_email']}, {'columns': ['contact_key'], 'unique': true}],
) }}

with contacts as (

    select * from {{ ref('int_invoiz__contacts') }}
    where customer_email is not null
      and {{ changed_customers }}

),

latest_invoice as (

    select
        contact_key,
        max(invoice_date)   as last_invoice_date,
        max(invoice_id)     as last_invoice_id_on_last_date
    from (
        select
            contact_key,
            invoice_date,
            invoice_id,
            rank() over (partition by contact_key order by invoice_date desc nulls last) as date_rank
        from {{ ref('int_invoiz__invoices') }}
        where counts_toward_value and is_assigned
          -- the invoices of these customers' contacts (an assigned invoice has its contact's e-mail)
          and {{ changed_customers }}
    ) as ranked
    where date_rank = 1
    group by contact_key

)

select
    contacts.contact_key,
    contacts.account,
    contacts.contact_id,
    contacts.customer_email,
    latest_invoice.last_invoice_date,
    cast(row_number() over (
        partition by contacts.customer_email
        order by
            latest_invoice.last_invoice_date desc nulls last,
            latest_invoice.last_invoice_id_on_last_date desc nulls last,
            contacts.account asc,
            contacts.contact_id desc
    ) as bigint) as contact_rank,
    versions.customer_version
from contacts
left join latest_invoice
    on latest_invoice.contact_key = contacts.contact_key
left join {{ versions }} as versions
    on versions.customer_email = contacts.customer_email
