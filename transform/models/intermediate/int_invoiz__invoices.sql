-- One row per live (not deleted) invoice: assignment to a customer e-mail (R2), value basis and the split of the
-- invoice amount into open / paid / uncollectible / unclassified (R3, R4), days since the invoice date (R7) and
-- receivables aging. All amount rules are documented in models/docs.md (doc block "amount_rules").
-- Nothing here depends on the date of the run (days since, aging: computed in the views that show them), so a run
-- without new data rebuilds nothing. Incremental by account (macros/incremental_by_key.sql).
{%- set basis = value_basis() %}
{%- set versions = ref('int_invoiz__account_versions') %}
{%- set changed_accounts = changed_keys_in('account', 'account', versions, 'account_version',
                                          many_rows_per_key=true) %}
{{ config(
    materialized='incremental',
    pre_hook="{{ delete_changed_keys('account', ref('int_invoiz__account_versions'), 'account_version',
                                     many_rows_per_key=true) }}",
    indexes=[
        {'columns': ['account']}, {'columns': ['customer_email']}, {'columns': ['contact_key']},
        {'columns': ['invoice_key'], 'unique': true},
    ],
) }}

with invoices as (

    select * from {{ ref('stg_invoiz__invoices') }}
    where not is_deleted
      and {{ changed_accounts }}

),

versions as (

    select account, account_version from {{ versions }}

),

contacts as (

    select * from {{ ref('int_invoiz__contacts') }}
    where {{ changed_accounts }}

),

payments as (

    select * from {{ ref('int_invoiz__invoice_payment_totals') }}
    where {{ changed_accounts }}

),

joined as (

    select
        invoices.*,
        contacts.contact_key        as matched_contact_key,
        contacts.is_deleted         as contact_is_deleted,
        contacts.email_status       as contact_email_status,
        contacts.customer_email,
        payments.payment_count,
        payments.last_payment_at,
        versions.account_version,
        coalesce(invoices.total_{{ basis }}, 0) as amount,
        {%- if basis == 'gross' %}
        invoices.outstanding_amount as outstanding_on_basis
        {%- else %}
        -- outstandingAmount is gross: scale it to net with the invoice's net/gross ratio
        round(invoices.outstanding_amount * invoices.total_net / nullif(invoices.total_gross, 0), 2) as outstanding_on_basis
        {%- endif %}
    from invoices
    left join contacts
        on contacts.contact_key = invoices.contact_key   -- contact in the SAME account (key = account:id)
    left join payments
        on payments.invoice_key = invoices.invoice_key
    left join versions
        on versions.account = invoices.account

),

classified as (

    select
        *,
        status not in ('draft', 'cancelled') as counts_toward_value,
        case
            when contact_id is null then 'no_recipient_contact'
            when matched_contact_key is null then 'contact_not_found'
            when contact_is_deleted then 'contact_deleted'
            when contact_email_status = 'missing' then 'contact_without_email'
            when contact_email_status = 'invalid' then 'contact_email_invalid'
        end as unassigned_reason,
        case
            when status in ('open', 'uncollectible') then coalesce(outstanding_on_basis, amount)
        end as remaining_amount
    from joined

),

final as (

    select
        invoice_key,
        account,
        invoice_id,
        invoice_number,
        invoice_type,
        state,
        cast(case state
            when 'draft' then 'Entwurf'
            when 'locked' then 'offen'
            when 'sent' then 'offen (versendet)'
            when 'printed' then 'offen (gedruckt)'
            when 'downloaded' then 'offen (heruntergeladen)'
            when 'partiallyPaid' then 'teilbezahlt'
            when 'dunned' then 'gemahnt'
            when 'paid' then 'bezahlt'
            when 'cancelled' then 'storniert'
            when 'uncollectible' then 'uneinbringlich'
            when 'recurringTemplate' then 'Abo-Vorlage'
            else state
        end as text)                                                            as state_label,
        status,
        cast(case status
            when 'open' then 'offen'
            when 'paid' then 'bezahlt'
            when 'draft' then 'Entwurf'
            when 'cancelled' then 'storniert'
            when 'uncollectible' then 'uneinbringlich'
            else 'unbekannt'
        end as text)                                                            as status_label,
        contact_id,
        contact_key,
        customer_email,
        customer_email is not null                                              as is_assigned,
        cast(case when customer_email is null then unassigned_reason end as text) as unassigned_reason,
        title,
        invoice_date,
        due_date,
        paid_date,
        counts_toward_value,
        cast('{{ basis }}' as text)                                             as value_basis,
        {{ currency() }}                                                        as currency,
        -- typed as the contract declares them: an incremental run compares the column types with the table's
        cast(total_net as numeric(18,4))                                        as total_net,
        cast(total_gross as numeric(18,4))                                      as total_gross,
        cast(outstanding_amount as numeric(18,4))                               as outstanding_amount,
        cast(amount as numeric(18,4))                                           as amount,
        cast(case when counts_toward_value then amount else 0 end as numeric(18,4)) as value_amount,
        cast(case when status = 'open' then remaining_amount else 0 end as numeric(18,4)) as open_amount,
        cast(case
            when status = 'paid' then amount
            when status in ('open', 'uncollectible') then amount - remaining_amount
            else 0
        end as numeric(18,4))                                                   as paid_amount,
        cast(case when status = 'uncollectible' then remaining_amount else 0 end as numeric(18,4)) as uncollectible_amount,
        cast(case when status = 'unknown' then amount else 0 end as numeric(18,4)) as unclassified_amount,
        coalesce(payment_count, 0)                                              as payment_count,
        last_payment_at,
        cancellation_number,
        current_dunning_label,
        invoice_url,
        loaded_at,
        account_version
    from classified

)

select * from final
