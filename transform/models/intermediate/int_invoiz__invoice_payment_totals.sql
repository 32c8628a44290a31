-- Informational payment facts per invoice from the invoice_payments child stream (live rows only).
-- Amounts in the marts do NOT come from here but from the invoice's outstanding_amount (see docs: amounts).
-- Incremental by account (macros/incremental_by_key.sql).
{%- set versions = ref('int_invoiz__account_versions') %}
{{ config(
    materialized='incremental',
    pre_hook="{{ delete_changed_keys('account', ref('int_invoiz__account_versions'), 'account_version',
                                     many_rows_per_key=true) }}",
    indexes=[{'columns': ['account']}, {'columns': ['invoice_key'], 'unique': true}],
) }}

with payments as (

    select * from {{ ref('stg_invoiz__invoice_payments') }}
    where not is_deleted
      and {{ changed_keys_in('account', 'account', versions, 'account_version', many_rows_per_key=true) }}

)

select
    payments.invoice_key,
    payments.account,
    count(*) filter (where not is_reversed and amount > 0)          as payment_count,
    max(paid_at) filter (where not is_reversed and amount > 0)      as last_payment_at,
    cast(coalesce(sum(amount), 0) as numeric(18,4))                 as payments_net_total,
    versions.account_version
from payments
left join {{ versions }} as versions
    on versions.account = payments.account
group by payments.invoice_key, payments.account, versions.account_version
