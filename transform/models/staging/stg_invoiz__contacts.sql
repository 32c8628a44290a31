with latest as (

    {{ singer_latest(source('invoiz', 'contacts'), ['account', 'id']) }}

),

cutoffs as (

    select account, full_refresh_cutoff
    from {{ ref('int_invoiz__full_refresh_cutoffs') }}
    where stream = 'contacts'

),

source as (

    select latest.*, cutoffs.full_refresh_cutoff
    from latest
    left join cutoffs on cutoffs.account = latest.account

),

renamed as (

    select
        {{ invoiz_key(['account', 'id']) }}                  as contact_key,
        cast(account as text)                                as account,
        cast(id as bigint)                                   as contact_id,
        cast(number as text)                                 as contact_number,
        cast(kind as text)                                   as kind,
        cast(name as text)                                   as name,
        cast(company_name as text)                           as company_name,
        cast(company_name_affix as text)                     as company_name_affix,
        cast(salutation as text)                             as salutation,
        cast(title as text)                                  as title,
        cast(first_name as text)                             as first_name,
        cast(last_name as text)                              as last_name,
        cast(email as text)                                  as email,
        cast(street as text)                                 as street,
        cast(zip_code as text)                               as zip_code,
        cast(city as text)                                   as city,
        cast(country_iso as text)                            as country_iso,
        cast(phone as text)                                  as phone,
        cast(phone1 as text)                                 as phone1,
        cast(phone2 as text)                                 as phone2,
        cast(mobile as text)                                 as mobile,
        cast(fax as text)                                    as fax,
        cast(website as text)                                as website,
        cast(notes as text)                                  as notes,
        cast(category as text)                               as category,
        cast(vat_id as text)                                 as vat_id,
        cast(type as text)                                   as contact_type,
        cast(address as jsonb)                               as address,
        to_jsonb(contact_persons)                           as contact_persons,
        cast(discount as numeric)                            as discount,
        cast(pay_condition_id as bigint)                     as pay_condition_id,
        cast(notes_alert as boolean)                         as notes_alert,
        cast(contact_url as text)                            as contact_url,
        cast(extra_fields as jsonb)                          as extra_fields,
        {{ is_gone_from_invoiz() }}                          as is_deleted,
        {{ gone_from_invoiz_at() }}                          as deleted_at,
        cast(_sdc_extracted_at as timestamp)                 as extracted_at,
        cast(_sdc_batched_at as timestamp)                   as loaded_at

    from source

)

select * from renamed
