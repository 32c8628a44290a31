-- The deletion rule of a full refresh, one row per account and stream of the tap's sync_status (doc block
-- full_refresh_cutoffs). Counts the rows of the full refresh in the raw tables themselves: the staging models of
-- those tables join this model to flag deleted rows, so it cannot read them.
{%- set streams = {
    'invoices': source('invoiz', 'invoices'),
    'contacts': source('invoiz', 'contacts'),
    'invoice_payments': source('invoiz', 'invoice_payments'),
} %}
{%- set row_columns = {'account': 'text', '_sdc_extracted_at': 'timestamp', '_sdc_deleted_at': 'timestamp'} %}

with sync_status as (

    select * from {{ ref('stg_invoiz__sync_status') }}

),

counted as (

    {%- for stream, relation in streams.items() %}

    select
        sync_status.account,
        sync_status.stream,
        sync_status.full_refresh_started_at,
        sync_status.full_refresh_rows,
        sent.rows_sent                                      as rows_sent_since_full_refresh,
        sync_status.last_full_refresh_started_at
    from sync_status
    left join lateral (
        -- live rows of the account extracted since the full refresh started (only counted when there is a check)
        select count(*) as rows_sent
        from ({{ relation_or_empty(relation, row_columns) }}) as sent_row
        where sync_status.full_refresh_started_at is not null
          and sync_status.full_refresh_rows is not null
          and sent_row.account = sync_status.account
          and sent_row._sdc_deleted_at is null
          and sent_row._sdc_extracted_at >= sync_status.full_refresh_started_at
    ) as sent on true
    where sync_status.stream = '{{ stream }}'
    {%- if not loop.last %}

    union all
    {%- endif %}
    {%- endfor %}

)

select
    account,
    stream,
    full_refresh_started_at,
    full_refresh_rows,
    cast(rows_sent_since_full_refresh as bigint)                                 as rows_sent_since_full_refresh,
    last_full_refresh_started_at,
    full_refresh_started_at is not null
        and (full_refresh_rows is null or rows_sent_since_full_refresh >= full_refresh_rows) as is_full_refresh_committed,
    cast(
        case
            when full_refresh_started_at is not null
                 and (full_refresh_rows is null or rows_sent_since_full_refresh >= full_refresh_rows)
                then full_refresh_started_at
            else last_full_refresh_started_at
        end as timestamp)                                                         as full_refresh_cutoff
from counted
