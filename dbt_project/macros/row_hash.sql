{#-
  A fingerprint of a row's values, for change detection in incremental models: the hash
  (dbt.hash: md5 on Postgres and Redshift) of the columns cast to strings (dbt.safe_cast +
  the adapter's string type), nulls as '' and separated by '|', so (1, 23) and (12, 3)
  differ. Only dbt's cross-database macros: it compiles on every adapter dbt supports.
-#}
{% macro row_hash(columns) -%}
    {%- set parts = [] -%}
    {%- for column in columns -%}
        {%- if not loop.first %}{% do parts.append("'|'") %}{% endif -%}
        {%- do parts.append("coalesce(" ~ dbt.safe_cast(column, api.Column.translate_type('string')) ~ ", '')") -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(parts)) }}
{%- endmacro %}
