-- One row per customer (= normalised e-mail, R2) with the R8 contact fields taken from the contact with
-- contact_rank = 1 in int_invoiz__customer_contacts (see that model for the rule).
-- Incremental by customer (macros/incremental_by_key.sql).
{%- set versions = ref('int_invoiz__customer_versions') %}
{{ config(
    materialized='incremental',
    pre_hook="{{ delete_changed_keys('email', ref('int_invoiz__customer_versions'), 'customer_version',
                                     versions_key='customer_email') }}",
    indexes=[{'columns': ['email'], 'unique': true}],
) }}

with ranked as (

    select * from {{ ref('int_invoiz__customer_contacts') }}
    where {{ changed_keys_in('customer_email', 'email', versions, 'customer_version', versions_key='customer_email') }}

),

contacts as (

    select * from {{ ref('int_invoiz__contacts') }}

),

per_customer as (

    select
        customer_email,
        count(*)                                                    as contact_count,
        count(distinct account)                                     as account_count,
        string_agg(distinct account, ', ' order by account)         as accounts
    from ranked
    group by customer_email

)

select
    ranked.customer_email       as email,
    contacts.company_name,
    contacts.salutation,
    contacts.title,
    contacts.first_name,
    contacts.last_name,
    contacts.name               as display_name,
    contacts.street,
    contacts.zip_code,
    contacts.city,
    contacts.country_iso        as country,
    contacts.phone,
    contacts.kind,
    contacts.account            as source_account,
    contacts.contact_id         as source_contact_id,
    contacts.contact_number     as source_contact_number,
    contacts.contact_url        as source_contact_url,
    per_customer.contact_count,
    per_customer.account_count,
    per_customer.accounts,
    ranked.customer_version
from ranked
join contacts
    on contacts.contact_key = ranked.contact_key
join per_customer
    on per_customer.customer_email = ranked.customer_email
where ranked.contact_rank = 1
