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

{#- SQL: the changed keys of this model (see above). Only valid in an incremental run. -#}
{#- key: the key column of this model; versions_key: its name in the versions model (default: the same). -#}
{% macro changed_keys_sql(key, versions, version_column, versions_key=none) -%}
    {%- set versions_key = versions_key or key -%}
    select versions.{{ versions_key }}
    from {{ versions }} as versions
    left join (
        select distinct {{ key }}, {{ version_column }} from {{ this }}
    ) as built on built.{{ key }} = versions.{{ versions_key }}
    where built.{{ version_column }} is distinct from versions.{{ version_column }}
    union
    select built.{{ key }}
    from {{ this }} as built
    where not exists (select from {{ versions }} as versions where versions.{{ versions_key }} = built.{{ key }})
{%- endmacro %}

{#- Pre-hook: delete the rows of the changed keys (nothing on a first or full-refresh build). -#}
{% macro delete_changed_keys(key, versions, version_column, versions_key=none) -%}
    {%- if incremental_run(version_column) -%}
    delete from {{ this }} where {{ key }} in ({{ changed_keys_sql(key, versions, version_column, versions_key) }})
    {%- endif -%}
{%- endmacro %}

{#- A filter for the model's SQL: `column` among the changed keys; true on a first or full-refresh build.
    literal=true reads the keys first and writes them as constants, so PostgreSQL can push the filter into a
    staging view (through its window function) instead of reading every account's rows. -#}
{% macro changed_keys_in(column, key, versions, version_column, versions_key=none, literal=false) -%}
    {%- if not incremental_run(version_column) -%}
    true
    {%- elif literal -%}
        {%- set keys = [] -%}
        {%- if execute -%}
            {%- set keys = run_query(changed_keys_sql(key, versions, version_column, versions_key)).columns[0].values() | list -%}
            {%- do log(model.name ~ ": " ~ keys | length ~ " changed " ~ key ~ "(s)", info=true) -%}
        {%- endif -%}
        {%- if keys -%}
    {{ column }} in ({% for value in keys %}'{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor %})
        {%- else -%}
    false
        {%- endif -%}
    {%- else -%}
    {{ column }} in ({{ changed_keys_sql(key, versions, version_column, versions_key) }})
    {%- endif -%}
{%- endmacro %}
