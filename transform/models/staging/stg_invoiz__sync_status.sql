{#- The tap's latest run per account and stream (empty until a run of a tap version that writes sync_status). -#}
{%- set columns = {
    'account': 'text', 'stream': 'text', 'run_id': 'text', 'started_at': 'timestamp', 'completed_at': 'timestamp',
    'full_refresh': 'boolean', 'full_refresh_started_at': 'timestamp', 'full_refresh_rows': 'bigint',
    'last_full_refresh_started_at': 'timestamp', 'records_emitted': 'bigint', 'new': 'bigint', 'changed': 'bigint',
    'deleted': 'bigint', 'tracked': 'bigint', 'requests': 'bigint', 'retries': 'bigint',
} %}

with source as (

    {{ relation_or_empty(source('invoiz', 'sync_status'), columns) }}

),

renamed as (

    select
        cast(account as text)                                as account,
        cast(stream as text)                                 as stream,
        cast(run_id as text)                                 as run_id,
        cast(started_at as timestamp)                        as started_at,
        cast(completed_at as timestamp)                      as completed_at,
        cast(full_refresh as boolean)                        as was_full_refresh,
        cast(full_refresh_started_at as timestamp)           as full_refresh_started_at,
        cast(full_refresh_rows as bigint)                    as full_refresh_rows,
        cast(last_full_refresh_started_at as timestamp)      as last_full_refresh_started_at,
        cast(records_emitted as bigint)                      as records_emitted,
        cast(new as bigint)                                  as new_rows,
        cast(changed as bigint)                              as changed_rows,
        cast(deleted as bigint)                              as deleted_rows,
        cast(tracked as bigint)                              as tracked_rows,
        cast(requests as bigint)                             as requests,
        cast(retries as bigint)                              as retries

    from source

)

select * from renamed
