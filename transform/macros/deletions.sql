{#- is_deleted / deleted_at of a staging row: a tap tombstone, or not sent again since its account's full-refresh
    cut-off (model int_invoiz__full_refresh_cutoffs, joined as `full_refresh_cutoff`). -#}
{% macro is_gone_from_invoiz() -%}
    (_sdc_deleted_at is not null or coalesce(_sdc_extracted_at < full_refresh_cutoff, false))
{%- endmacro %}

{% macro gone_from_invoiz_at() -%}
    cast(coalesce(_sdc_deleted_at, case when _sdc_extracted_at < full_refresh_cutoff then full_refresh_cutoff end) as timestamp)
{%- endmacro %}
