{#-
  Building blocks of the incremental models (delete+insert on a key; docs in the README,
  "Incremental models").

  incremental_watermark(): the latest `_loaded_at` this model has written, as a scalar
  subquery (1900-01-01 while the table is empty). `_loaded_at` is when warehouse_load copied
  the row into landing; a model recomputes only the keys with a source row loaded after it.
  Rows are written only when their content changed (changed_rows_only), so the watermark may
  lag behind an unchanged reload: the keys are then re-examined, never missed.
  A subquery, not a literal read beforehand: Postgres then assumes a third of the rows pass
  `_loaded_at > <watermark>` and hash-joins the affected keys; with a literal it trusts
  statistics taken before the load (no row that new) and picks nested loops, quadratic in
  the rows of the load.
-#}
{% macro incremental_watermark(column='_loaded_at') -%}
    (
        select coalesce(max({{ column }}), cast('1900-01-01 00:00:00+00' as {{ dbt.type_timestamp() }}))
        from {{ this }}
    )
{%- endmacro %}

{#-
  changed_rows_only(relation, key, hash_column): the predicate keeping the recomputed rows
  of `relation` whose fingerprint (`hash_column`, see row_hash / group_hash) differs from the
  one stored for the same key, so a recomputed but unchanged row (a partition reloaded as it
  was, a rerun) is not rewritten. With a key that has several rows (an order's lines) the
  fingerprint must be the key's group_hash, so the key is rewritten whole or not at all.
-#}
{% macro changed_rows_only(relation, key, hash_column='row_hash') -%}
    not exists (
        select 1 from {{ this }} as current_rows
        where
            current_rows.{{ key }} = {{ relation }}.{{ key }}
            and current_rows.{{ hash_column }} = {{ relation }}.{{ hash_column }}
    )
{%- endmacro %}

{#-
  group_hash(row_hash): the fingerprint of a group of rows (use with GROUP BY the key): the
  hash of the group's row hashes in order, so it changes when a row of the group changes,
  appears or vanishes.
-#}
{% macro group_hash(row_hash) -%}
    {{ dbt.hash(dbt.listagg(row_hash, "','", "order by " ~ row_hash)) }}
{%- endmacro %}

{#-
  delete_gone_keys(source, columns, source_filter): the post_hook SQL of an incremental model
  deleting its rows whose key (`columns`, all not null) no longer exists in `source` (with
  `source_filter`, a condition on the source's alias `s`): deleted in the source, or an
  aggregate's group that has no row any more. Nothing on a full build (the table is new).
-#}
{% macro delete_gone_keys(source, columns, source_filter=none) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} as t where not exists (
            select 1 from {{ source }} as s
            where
                {% for column in columns -%}
                    {% if not loop.first %}and {% endif %}s.{{ column }} = t.{{ column }}
                {% endfor -%}
                {% if source_filter %}and ({{ source_filter }}){% endif %}
        )
    {%- endif -%}
{%- endmacro %}

{#-
  The incremental scope of a mart, in one place (every incremental mart uses it):

    with
    {% call incremental_scope() %}
    affected as (
        select order_id from {{ ref('stg_sales__orders') }}
        where _loaded_at > (select loaded_at from watermark)
    ),
    {% endcall %}
    orders as (select * from {{ ref('stg_sales__orders') }} {{ in_scope('order_id') }}),
    ...
    final as (...)
    select * from final {{ only_changed('final', 'order_id') }}

  incremental_scope(): on an incremental run, the CTE `watermark` (incremental_watermark(),
  one row `loaded_at`) followed by the call's body: the CTEs that find the keys to recompute,
  ending with `affected` (one column, the key), each followed by a comma. Nothing on a full
  build. in_scope(column, also): the WHERE keeping only the affected keys (`also`: a further
  condition OR-ed in). only_changed(relation, key, hash_column): the WHERE keeping only the
  recomputed rows whose fingerprint changed (changed_rows_only). Both empty on a full build.
-#}
{% macro incremental_scope() -%}
    {%- if is_incremental() %}
watermark as (

    select {{ incremental_watermark() }} as loaded_at

),

{{ caller() }}
    {%- endif %}
{%- endmacro %}

{% macro in_scope(column, also=none) -%}
    {%- if is_incremental() -%}
        where {{ column }} in (select affected.{{ column }} from affected)
        {%- if also %} or ({{ also }}){% endif -%}
    {%- endif -%}
{%- endmacro %}

{% macro only_changed(relation, key, hash_column='row_hash') -%}
    {%- if is_incremental() -%}
        where {{ changed_rows_only(relation, key, hash_column) }}
    {%- endif -%}
{%- endmacro %}

{#-
  Incremental scopes that are common enough to name (each is a whole incremental_scope()):
  keys_loaded_since(relation, key): the keys of `relation` with a row loaded after the
  watermark; order_scope(): the orders whose row or any line was loaded after it (the marts
  built per order: int_order_lines, fct_orders, fct_order_items; the model must declare both
  refs with `-- depends_on:`, since this runs only when is_incremental()).
-#}
{% macro keys_loaded_since(relation, key) -%}
    {% call incremental_scope() %}
affected as (

    select {{ key }} from {{ relation }}
    where _loaded_at > (select loaded_at from watermark)

),
    {% endcall %}
{%- endmacro %}

{% macro order_scope() -%}
    {% call incremental_scope() %}
affected as (

    select order_id from {{ ref('stg_sales__orders') }}
    where _loaded_at > (select loaded_at from watermark)
    union
    select order_id from {{ ref('stg_sales__order_items') }}
    where _loaded_at > (select loaded_at from watermark)

),
    {% endcall %}
{%- endmacro %}
