{#- The tap's latest run per account and stream (empty until a run of a tap version that writes sync_status). -#}
{%- set src = source('invoiz', 'sync_status') -%}
{%- set src_exists = true -%}
{%- if execute and adapter.get_relation(database=src.database, schema=src.schema, identifier=src.identifier) is none -%}
    {%- set src_exists = false -%}
{%- endif %}

with source as (

    {% if src_exists -%}
    select * from {{ src }}
    {%- else -%}
    select
        cast(null as text) as account, cast(null as text) as stream, cast(null as text) as run_id,
        cast(null as timestamp) as started_at, cast(null as timestamp) as completed_at,
        cast(null as boolean) as full_refresh, cast(null as timestamp) as full_refresh_started_at,
        cast(null as timestamp) as last_full_refresh_started_at, cast(null as bigint) as records_emitted,
        cast(null as bigint) as new, cast(null as bigint) as changed, cast(null as bigint) as deleted,
        cast(null as bigint) as tracked, cast(null as bigint) as requests, cast(null as bigint) as retries
    where false
    {%- endif %}

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
