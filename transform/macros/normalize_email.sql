{#-
  normalize_email(expr): the customer key of R2.
  1. Unicode NFC (an e-mail typed as "A + combining diaeresis" equals one typed as "Ä");
  2. trim whitespace incl. tab, newline, no-break space (U+00A0), zero-width space (U+200B), BOM (U+FEFF);
  3. "Name <addr>" -> addr; drop a "mailto:" prefix; if several addresses are separated by "," or ";", keep the first;
  4. lower-case with Unicode case mapping (see email_lower_collation);
  5. empty -> null.
  Validity is judged separately by is_valid_email().
-#}
{% macro normalize_email(expr) -%}
    nullif(
        lower(
            regexp_replace(
                regexp_replace(
                    regexp_replace(
                        regexp_replace(normalize(({{ expr }})::text, NFC), '^[\s\u00a0\u200b\ufeff]+|[\s\u00a0\u200b\ufeff]+$', '', 'g'),
                        '^[^<]*<\s*([^<>\s]+@[^<>\s]+)\s*>.*$', '\1'),   -- "Name <addr>" -> addr
                    '^mailto:\s*', '', 'i'),                                   -- mailto: prefix
                '\s*[,;].*$', ''                                               -- first of several addresses
            ) {{ email_lower_collation() }}
        ),
        ''
    )
{%- endmacro %}

{#- A normalised address counts as an e-mail address when it has exactly one "@" with text on both sides,
    no whitespace, and a dot in the domain. -#}
{% macro is_valid_email(normalized_expr) -%}
    coalesce(({{ normalized_expr }}) ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$', false)
{%- endmacro %}

{#- COLLATE clause used for lower(): var email_collation if set; else pg_c_utf8 on PostgreSQL 17+
    (full Unicode case mapping whatever the database locale, also for a database created with locale C);
    else the database default collation. -#}
{% macro email_lower_collation() -%}
    {%- set configured = var('email_collation', '') -%}
    {%- if configured -%}
        collate "{{ configured }}"
    {%- elif execute -%}
        {%- set result = run_query("select current_setting('server_version_num')::int >= 170000") -%}
        {%- if result and result.columns[0].values()[0] -%}collate "pg_c_utf8"{%- endif -%}
    {%- endif -%}
{%- endmacro %}
