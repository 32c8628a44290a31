{#-
  singer_latest(source_relation, key_columns): one row per primary key, the latest version.
  target-postgres already merges on the key, so this is normally a no-op; it keeps staging correct if a table
  was ever loaded append-only (e.g. another loader, or a stream without key_properties).
  Latest = highest _sdc_table_version, then _sdc_sequence, _sdc_extracted_at, _sdc_batched_at (nulls lowest).
-#}
{% macro singer_latest(source_relation, key_columns) -%}
    select *
    from (
        select
            src.*,
            row_number() over (
                partition by {{ key_columns | join(', ') }}
                order by
                    _sdc_table_version desc nulls last,
                    _sdc_sequence desc nulls last,
                    _sdc_extracted_at desc nulls last,
                    _sdc_batched_at desc nulls last
            ) as _singer_version_rank
        from {{ source_relation }} as src
    ) as ranked
    where _singer_version_rank = 1
{%- endmacro %}

{#- A readable, unambiguous text key: 'account:id[:id...]' (ids are integers, so the last parts never contain ':'). -#}
{% macro invoiz_key(columns) -%}
    ({% for c in columns %}{% if not loop.first %} || ':' || {% endif %}cast({{ c }} as text){% endfor %})
{%- endmacro %}
