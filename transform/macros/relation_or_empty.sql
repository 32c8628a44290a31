{#-
  relation_or_empty(relation, columns): a select over `relation`, or — while it does not exist yet — an empty
  select with the given columns ({name: type}), so a model over a raw table target-postgres has not created yet
  builds empty instead of failing the whole build. Logs once per model when it stands in for a missing table.
-#}
{% macro relation_or_empty(relation, columns) -%}
    {%- if relation_exists(relation) -%}
    select * from {{ relation }}
    {%- else -%}
    {%- if execute %}{% do log(model.name ~ ": " ~ relation ~ " does not exist yet; reading it as empty", info=true) %}{% endif -%}
    select
        {%- for name, type in columns.items() %}
        cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    where false
    {%- endif -%}
{%- endmacro %}

{#- Whether `relation` exists in the warehouse (at parse time, and for a unit test's fixture, which is a CTE without
    schema: assumed to). -#}
{% macro relation_exists(relation) -%}
    {%- if not execute or relation.schema is none -%}
        {{- return(true) -}}
    {%- endif -%}
    {{- return(adapter.get_relation(database=relation.database, schema=relation.schema,
                                    identifier=relation.identifier) is not none) -}}
{%- endmacro %}
