{#-
  Use custom schema names verbatim (dbt's default prefixes them with the target schema,
  e.g. `analytics_staging`). The warehouse layout (docs/lake-layout.md) fixes the names
  `staging`, `intermediate`, `marts` and `serving_next`, and serve_publish swaps
  `serving_next` -> `serving`, so the serving models must land in exactly `serving_next`.
  Models without a custom schema go to the target schema (`analytics`).
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
