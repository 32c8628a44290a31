-- Every contact version from staging (live and deleted) with its normalised e-mail and whether that is usable
-- as a customer key (R2). Deleted contacts stay here so invoices can say "contact_deleted".
-- Incremental by account: a run rebuilds the accounts whose raw data changed (macros/incremental_by_key.sql).
{%- set versions = ref('int_invoiz__account_versions') %}
{{ config(
    materialized='incremental',
    pre_hook="{{ delete_changed_keys('account', ref('int_invoiz__account_versions'), 'account_version',
                                     many_rows_per_key=true) }}",
    indexes=[{'columns': ['account']}, {'columns': ['customer_email']}, {'columns': ['contact_key'], 'unique': true}],
) }}

with contacts as (

    select * from {{ ref('stg_invoiz__contacts') }}
    where {{ changed_keys_in('account', 'account', versions, 'account_version', many_rows_per_key=true) }}

),

versions as (

    select account, account_version from {{ versions }}

),

normalised as (

    select
        contacts.*,
        {{ normalize_email('contacts.email') }} as email_normalized,
        versions.account_version
    from contacts
    left join versions
        on versions.account = contacts.account

)

select
    contact_key,
    account,
    contact_id,
    contact_number,
    kind,
    name,
    coalesce(company_name, case when kind = 'company' then name end)          as company_name,
    salutation,
    title,
    first_name,
    last_name,
    email                                                                      as email_raw,
    email_normalized,
    cast(case
        when email_normalized is null then 'missing'
        when {{ is_valid_email('email_normalized') }} then 'valid'
        else 'invalid'
    end as text)                                                               as email_status,
    case when {{ is_valid_email('email_normalized') }} and not is_deleted
         then email_normalized end                                             as customer_email,
    street,
    zip_code,
    city,
    country_iso,
    coalesce(nullif(trim(phone), ''), nullif(trim(phone1), ''), nullif(trim(mobile), ''), nullif(trim(phone2), '')) as phone,
    contact_url,
    is_deleted,
    deleted_at,
    account_version
from normalised
