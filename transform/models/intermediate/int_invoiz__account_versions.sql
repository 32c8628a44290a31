-- The version of every account's raw data (doc block incremental_marts): per raw table its row count, latest
-- _sdc_batched_at and _sdc_extracted_at, count and latest of _sdc_deleted_at (an ACTIVATE_VERSION soft delete sets
-- only that column) and, for rows loaded without _sdc_batched_at (BATCH messages leave the _sdc_* columns empty), a
-- checksum of those rows; plus the vars that change values. The incremental models rebuild exactly the accounts whose version
-- differs from the one they were built from. Reads the raw tables: a pass over them costs a fraction of the staging
-- views (which rank every key's versions).
{%- set row_columns = {
    'account': 'text', '_sdc_batched_at': 'timestamp', '_sdc_extracted_at': 'timestamp', '_sdc_deleted_at': 'timestamp',
} %}

with raw_tables as (

    {%- for table in ['invoices', 'contacts', 'invoice_payments', 'sync_status'] %}

    select
        cast(raw_row.account as text)                                   as account,
        cast('{{ table }}' as text)                                     as raw_table,
        count(*)                                                        as row_count,
        max(raw_row._sdc_batched_at)                                    as last_loaded_at,
        max(raw_row._sdc_extracted_at)                                  as last_extracted_at,
        count(raw_row._sdc_deleted_at)                                  as deleted_count,
        max(raw_row._sdc_deleted_at)                                    as last_deleted_at,
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
            concat_ws(':', raw_table, row_count, last_loaded_at, last_extracted_at, deleted_count, last_deleted_at,
                      unstamped_checksum),
            ',' order by raw_table)
        || '|{{ value_basis() }}|{{ var("currency", "EUR") }}|{{ var("email_collation", "") }}'
    ) as text)                                                          as account_version,
    max(last_loaded_at)                                                 as last_loaded_at
from raw_tables
where account is not null
group by account
