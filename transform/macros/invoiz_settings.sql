{#- Reference date for days-since and aging: var as_of_date ('YYYY-MM-DD'), or today in var invoiz_timezone. -#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', 'today') -%}
    {%- if value is none or (value | string | trim) in ('', 'today') -%}
        cast((current_timestamp at time zone '{{ var("invoiz_timezone", "Europe/Berlin") }}') as date)
    {%- else -%}
        cast('{{ value }}' as date)
    {%- endif -%}
{%- endmacro %}

{#- The value basis: var invoiz_value_basis, 'gross' (default) or 'net'. -#}
{% macro value_basis() -%}
    {%- set basis = var('invoiz_value_basis', 'gross') | string | lower | trim -%}
    {%- if basis not in ('gross', 'net') -%}
        {{ exceptions.raise_compiler_error("var invoiz_value_basis must be 'gross' or 'net', got '" ~ basis ~ "'") }}
    {%- endif -%}
    {{- return(basis) -}}
{%- endmacro %}

{% macro currency() -%}
    cast('{{ var("currency", "EUR") }}' as text)
{%- endmacro %}

{#- Aging bucket of a number of days overdue (<= 0 is current). -#}
{% macro aging_bucket(days_overdue) -%}
    case
        when {{ days_overdue }} is null then null
        when {{ days_overdue }} <= 0 then 'current'
        when {{ days_overdue }} <= 30 then '1-30'
        when {{ days_overdue }} <= 60 then '31-60'
        when {{ days_overdue }} <= 90 then '61-90'
        else '90+'
    end
{%- endmacro %}
