{#-
  Incremental models that cost what changed (transform/README.md "Incremental marts").

  A versions model lists every key (an account, or a customer e-mail) with the version of its inputs
  (int_invoiz__account_versions, int_invoiz__customer_versions). Every row of an incremental model carries the
  version of its key it was built from. A key is changed when its version differs from the one the model holds, or
  when the model holds no rows of it (new, or empty), or when the versions no longer list it (gone). A run deletes
  the rows of the changed keys (pre-hook delete_changed_keys) and inserts them again (the model's SQL filtered by
  changed_keys_in); `dbt build --full-refresh` rebuilds every key. Per key, never one global watermark: an account
  onboarded late or re-backfilled has its own version.
-#}

{#- Whether this is an incremental run of a model built before (false on a first build, with --full-refresh, and in
    unit tests, which have no `this`). A table built by an older version of the project, without the version column,
    fails with what to do instead of an SQL error. -#}
{% macro incremental_run(version_column) -%}
    {%- if this is none or not is_incremental() -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- if execute -%}
        {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
        {%- if version_column not in columns -%}
            {{- exceptions.raise_compiler_error(
                this ~ " was built by an older version of this project (it has no column " ~ version_column
                ~ "): run `dbt build --full-refresh` once") -}}
        {%- endif -%}
    {%- endif -%}
    {{- return(true) -}}
{%- endmacro %}

{#- SQL: the changed keys of this model (see above). Only valid in an incremental run.
    key: the key column of this model; versions_key: its name in the versions model (default: the same).
    many_rows_per_key: for the account-keyed models (thousands of rows per key), read one row per key through the
    model's index on the key instead of every row: the version a key was built from (all its rows hold the same),
    and the model's keys by walking that index (a recursive skip scan; PostgreSQL has no loose index scan), so a run
    costs the same at 1,000 invoices per account as at 10. Otherwise one pass over the model and the versions
    (about one row per key), a full join.
-#}
{% macro changed_keys_sql(key, versions, version_column, versions_key=none, many_rows_per_key=false) -%}
    {%- set versions_key = versions_key or key -%}
    {%- if many_rows_per_key %}
    select versions.{{ versions_key }} as changed_key
    from {{ versions }} as versions
    where versions.{{ version_column }} is distinct from (
        select built.{{ version_column }} from {{ this }} as built
        where built.{{ key }} = versions.{{ versions_key }}
        limit 1
    )
    union
    select walked.{{ key }}
    from (
        with recursive walked as (
            (select {{ key }} from {{ this }} where {{ key }} is not null order by {{ key }} limit 1)
            union all
            select (select {{ key }} from {{ this }} as next_row where next_row.{{ key }} > walked.{{ key }}
                    order by next_row.{{ key }} limit 1)
            from walked
            where walked.{{ key }} is not null
        )
        select {{ key }} from walked where {{ key }} is not null
    ) as walked
    where not exists (select from {{ versions }} as versions where versions.{{ versions_key }} = walked.{{ key }})
    {%- else %}
    select distinct coalesce(versions.{{ versions_key }}, built.{{ key }}) as changed_key
    from {{ versions }} as versions
    full join {{ this }} as built on built.{{ key }} = versions.{{ versions_key }}
    where versions.{{ versions_key }} is null
       or built.{{ key }} is null
       or built.{{ version_column }} is distinct from versions.{{ version_column }}
    {%- endif %}
{%- endmacro %}

{#- The changed keys as a list, read before the model's SQL runs. -#}
{% macro changed_keys(key, versions, version_column, versions_key=none, many_rows_per_key=false) -%}
    {%- if not execute -%}
        {{- return([]) -}}
    {%- endif -%}
    {%- set keys = run_query(changed_keys_sql(key, versions, version_column, versions_key, many_rows_per_key))
        .columns[0].values() | list -%}
    {{- return(keys) -}}
{%- endmacro %}

{#- Up to this many changed keys (var incremental_max_literal_keys) are written into the SQL as constants: PostgreSQL
    then finds their rows through the key's index and can push the filter into a staging view (through its window
    function); a subquery gets a whole-table plan (its row estimates are far off). Beyond it (most customers changed)
    the subquery is cheaper to send than the list. -#}
{% macro max_literal_keys() -%}
    {{- return(var('incremental_max_literal_keys', 20000) | int) -}}
{%- endmacro %}

{#- `column in (...)` for a list of keys, or the changed-keys query when the list is longer than max_literal_keys(). -#}
{% macro keys_filter(column, keys, key, versions, version_column, versions_key, many_rows_per_key) -%}
    {%- if keys | length > max_literal_keys() -%}
    {{ column }} in ({{ changed_keys_sql(key, versions, version_column, versions_key, many_rows_per_key) }})
    {%- elif keys -%}
    {{ column }} in ({% for value in keys %}'{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor %})
    {%- else -%}
    false
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook: delete the rows of the changed keys (nothing on a first or full-refresh build, nor when no key
    changed: an empty hook is not sent). -#}
{% macro delete_changed_keys(key, versions, version_column, versions_key=none, many_rows_per_key=false) -%}
    {%- if incremental_run(version_column) -%}
        {%- set keys = changed_keys(key, versions, version_column, versions_key, many_rows_per_key) -%}
        {%- if keys | length > 0 -%}
    delete from {{ this }}
    where {{ keys_filter(key, keys, key, versions, version_column, versions_key, many_rows_per_key) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- A filter for the model's SQL: `column` among the changed keys; true on a first or full-refresh build. -#}
{% macro changed_keys_in(column, key, versions, version_column, versions_key=none, many_rows_per_key=false) -%}
    {%- if not incremental_run(version_column) -%}
    true
    {%- else -%}
        {%- set keys = changed_keys(key, versions, version_column, versions_key, many_rows_per_key) -%}
        {%- if execute -%}
            {%- do log(model.name ~ ": " ~ keys | length ~ " changed " ~ key ~ "(s)", info=true) -%}
        {%- endif -%}
    {{ keys_filter(column, keys, key, versions, version_column, versions_key, many_rows_per_key) }}
    {%- endif -%}
{%- endmacro %}
