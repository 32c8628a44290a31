with latest as (

    {{ singer_latest(source('invoiz', 'invoices'), ['account', 'id']) }}

),

cutoffs as (

    select account, full_refresh_cutoff
    from {{ ref('int_invoiz__full_refresh_cutoffs') }}
    where stream = 'invoices'

),

source as (

    select latest.*, cutoffs.full_refresh_cutoff
    from latest
    left join cutoffs on cutoffs.account = latest.account

),

renamed as (

    select
        {{ invoiz_key(['account', 'id']) }}                                  as invoice_key,
        cast(account as text)                                                as account,
        cast(id as bigint)                                                   as invoice_id,
        cast(nullif(trim(number), '') as text)                               as invoice_number,
        cast(type as text)                                                   as invoice_type,
        cast(state as text)                                                  as state,
        cast(
            case
                when _sdc_deleted_at is not null and status is null then null
                when lower(trim(status)) in ('draft', 'open', 'paid', 'cancelled', 'uncollectible') then lower(trim(status))
                else 'unknown'
            end as text)                                                     as status,
        cast(customer_id as bigint)                                          as contact_id,
        case when customer_id is not null
             then {{ invoiz_key(['account', 'customer_id']) }} end           as contact_key,
        cast(customer_data as jsonb)                                         as customer_data,
        cast(title as text)                                                  as title,
        cast(date as date)                                                   as invoice_date,
        cast(due_to_date as date)                                            as due_date,
        cast(delivery_date as date)                                          as delivery_date,
        cast(locked_at as timestamp)                                         as locked_at,
        cast(sent_at as timestamp)                                           as sent_at,
        cast(paid_date as date)                                              as paid_date,
        cast(total_net as numeric)                                           as total_net,
        cast(total_gross as numeric)                                         as total_gross,
        cast(outstanding_amount as numeric)                                  as outstanding_amount,
        cast(cash_discount_total as numeric)                                 as cash_discount_total,
        cast(price_kind as text)                                             as price_kind,
        cast(pay_condition_id as bigint)                                     as pay_condition_id,
        cast(meta_data as jsonb)                                             as meta_data,
        cast(meta_data -> 'cancellation' ->> 'number' as text)               as cancellation_number,
        cast(meta_data -> 'currentDunning' ->> 'label' as text)              as current_dunning_label,
        to_jsonb(positions)                                                 as positions,
        to_jsonb(history)                                                   as history,
        cast(invoice_url as text)                                            as invoice_url,
        cast(extra_fields as jsonb)                                          as extra_fields,
        {{ is_gone_from_invoiz() }}                                          as is_deleted,
        {{ gone_from_invoiz_at() }}                                          as deleted_at,
        cast(_sdc_extracted_at as timestamp)                                 as extracted_at,
        cast(_sdc_batched_at as timestamp)                                   as loaded_at

    from source

)

select * from renamed
