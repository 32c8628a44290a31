-- The version of every account's raw data (doc block incremental_marts): per raw table its row count, latest
-- _sdc_batched_at and, for rows loaded without one (BATCH messages leave the _sdc_* columns empty), a checksum of
-- those rows; plus the vars that change values. The incremental models rebuild exactly the accounts whose version
-- differs from the one they were built from. Reads the raw tables: a pass over them costs a fraction of the staging
-- views (which rank every key's versions).
{%- set row_columns = {'account': 'text', '_sdc_batched_at': 'timestamp'} %}

with raw_tables as (

    {%- for table in ['invoices', 'contacts', 'invoice_payments', 'sync_status'] %}

    select
        cast(raw_row.account as text)                                   as account,
        cast('{{ table }}' as text)                                     as raw_table,
        count(*)                                                        as row_count,
        max(raw_row._sdc_batched_at)                                    as last_loaded_at,
        sum(hashtextextended(cast(raw_row as text), 0)) filter (where raw_row._sdc_batched_at is null) as unstamped_checksum
    from ({{ relation_or_empty(source('invoiz', table), row_columns) }}) as raw_row
    group by raw_row.account
    {%- if not loop.last %}

    union all
    {%- endif %}
    {%- endfor %}

)

select
    account,
    cast(md5(
        string_agg(
            raw_table || ':' || row_count || ':' || coalesce(cast(last_loaded_at as text), '') || ':'
            || coalesce(cast(unstamped_checksum as text), ''),
            ',' order by raw_table)
        || '|{{ value_basis() }}|{{ var("currency", "EUR") }}|{{ var("email_collation", "") }}'
    ) as text)                                                          as account_version,
    max(last_loaded_at)                                                 as last_loaded_at
from raw_tables
where account is not null
group by account
