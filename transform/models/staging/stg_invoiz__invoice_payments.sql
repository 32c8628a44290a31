{#- target-postgres creates invoice_payments only once the tap has emitted that child stream (after the first
    invoice detail fetch). Until then this model is empty instead of failing the whole build. -#}
{%- set columns = {
    'account': 'text', 'invoice_id': 'bigint', 'id': 'bigint', 'date': 'timestamp', 'amount': 'numeric', 'type': 'text',
    'notes': 'text', 'cancellation_payment_id': 'bigint', 'extra_fields': 'jsonb', '_sdc_deleted_at': 'timestamp',
    '_sdc_extracted_at': 'timestamp', '_sdc_batched_at': 'timestamp', '_sdc_sequence': 'bigint',
    '_sdc_table_version': 'bigint',
} %}

with latest as (

    {{ singer_latest('(' ~ relation_or_empty(source('invoiz', 'invoice_payments'), columns) ~ ')',
                     ['account', 'invoice_id', 'id']) }}

),

cutoffs as (

    select account, full_refresh_cutoff
    from {{ ref('int_invoiz__full_refresh_cutoffs') }}
    where stream = 'invoice_payments'

),

source as (

    select latest.*, cutoffs.full_refresh_cutoff
    from latest
    left join cutoffs on cutoffs.account = latest.account

),

renamed as (

    select
        {{ invoiz_key(['account', 'invoice_id', 'id']) }}    as payment_key,
        {{ invoiz_key(['account', 'invoice_id']) }}          as invoice_key,
        cast(account as text)                                as account,
        cast(invoice_id as bigint)                           as invoice_id,
        cast(id as bigint)                                   as payment_id,
        cast(date as timestamp)                              as paid_at,
        cast(amount as numeric)                              as amount,
        cast(type as text)                                   as payment_type,
        cast(notes as text)                                  as notes,
        cast(cancellation_payment_id as bigint)              as cancellation_payment_id,
        cancellation_payment_id is not null                  as is_reversed,
        cast(extra_fields as jsonb)                          as extra_fields,
        {{ is_gone_from_invoiz() }}                          as is_deleted,
        {{ gone_from_invoiz_at() }}                          as deleted_at,
        cast(_sdc_extracted_at as timestamp)                 as extracted_at,
        cast(_sdc_batched_at as timestamp)                   as loaded_at

    from source

)

select * from renamed
