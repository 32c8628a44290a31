{#-
  full_refresh_cutoffs(stream_name, rows_relation): per account, the moment before which a row of this stream that
  was not sent again is gone from invoiz.

  The tap never sends ACTIVATE_VERSION (target-postgres would apply it to every account's rows of the shared table).
  A full refresh of one account (first run, `meltano run --full-refresh`) sends every row of that account; the tap's
  `sync_status` row for (account, stream) then carries `full_refresh_started_at`. Rows of that account extracted
  before it were not sent again: gone from invoiz. The cut-off applies once the rows of the full refresh are in the
  table (target-postgres commits streams separately, so the status row may land first): at least
  `full_refresh_rows` live rows extracted since then. Until then, and for runs that were no full refresh, the
  latest full refresh the state confirmed (`last_full_refresh_started_at`) applies. Without the sync_status table
  (a run that deselected it) nothing is marked beyond the tap's tombstones.
-#}
{% macro full_refresh_cutoffs(stream_name, rows_relation) -%}
    {%- set status = source('invoiz', 'sync_status') -%}
    {%- set status_exists = true -%}
    {%- if execute and adapter.get_relation(database=status.database, schema=status.schema, identifier=status.identifier) is none -%}
        {%- set status_exists = false -%}
    {%- endif -%}
    {%- if status_exists %}
    select
        cast(sync_status.account as text)                    as cutoff_account,
        cast(
            case
                when sync_status.full_refresh_started_at is not null
                     and (sync_status.full_refresh_rows is null or sent.rows_sent >= sync_status.full_refresh_rows)
                    then sync_status.full_refresh_started_at
                else sync_status.last_full_refresh_started_at
            end as timestamp)                                as full_refresh_cutoff
    from {{ status }} as sync_status
    left join lateral (
        select count(*) as rows_sent
        from {{ rows_relation }} as sent_row
        where sent_row.account = sync_status.account
          and sent_row._sdc_deleted_at is null
          and sent_row._sdc_extracted_at >= sync_status.full_refresh_started_at
    ) as sent on true
    where sync_status.stream = '{{ stream_name }}'
    {%- else %}
    select cast(null as text) as cutoff_account, cast(null as timestamp) as full_refresh_cutoff
    where false
    {%- endif %}
{%- endmacro %}

{#- is_deleted / deleted_at of a staging row: a tap tombstone, or not sent again since its account's cut-off. -#}
{% macro is_gone_from_invoiz() -%}
    (_sdc_deleted_at is not null or coalesce(_sdc_extracted_at < full_refresh_cutoff, false))
{%- endmacro %}

{% macro gone_from_invoiz_at() -%}
    cast(coalesce(_sdc_deleted_at, case when _sdc_extracted_at < full_refresh_cutoff then full_refresh_cutoff end) as timestamp)
{%- endmacro %}
