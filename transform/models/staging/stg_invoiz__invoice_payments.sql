with source as (

    {{ singer_latest(source('invoiz', 'invoice_payments'), ['account', 'invoice_id', 'id']) }}

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
        _sdc_deleted_at is not null                          as is_deleted,
        cast(_sdc_deleted_at as timestamp)                   as deleted_at,
        cast(_sdc_extracted_at as timestamp)                 as extracted_at,
        cast(_sdc_batched_at as timestamp)                   as loaded_at

    from source

)

select * from renamed
