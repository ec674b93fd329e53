-- depends_on: {{ ref('stg_sales__orders') }}
-- depends_on: {{ ref('stg_sales__order_items') }}
-- One row per order line, enriched with its order.
-- line_revenue = quantity * unit_price (the line's own price, as charged);
-- is_counted   = the order's CURRENT status is not 'cancelled' (what daily_sales counts).
--
-- Incremental (delete+insert on order_id: an order's lines are replaced together): the
-- orders whose row or a line was loaded after this table's watermark, filtered on both
-- inputs before the join. A table, not a view, with an index on order_id: fct_orders and
-- fct_order_items read the lines of their affected orders from it (a view filtered on its
-- output made Postgres join every line first). Lines and orders gone from the source are
-- deleted by the post_hooks.
{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['order_line_id'], 'unique': True}, {'columns': ['order_id']}],
        post_hook=[
            "{{ delete_gone_keys(ref('stg_sales__order_items'), ['order_id', 'line_no']) }}",
            "{{ delete_gone_keys(ref('stg_sales__orders'), ['order_id']) }}",
        ],
    )
}}

with
{{ order_scope() }}

order_items as (

    select * from {{ ref('stg_sales__order_items') }}
    {{ in_scope('order_id') }}

),

orders as (

    select * from {{ ref('stg_sales__orders') }}
    {{ in_scope('order_id') }}

),

final as (

    select
        {{ dbt.concat([
            dbt.safe_cast('order_items.order_id', api.Column.translate_type('string')),
            "'-'",
            dbt.safe_cast('order_items.line_no', api.Column.translate_type('string')),
        ]) }} as order_line_id,
        order_items.order_id,
        order_items.line_no,
        order_items.product_id,
        orders.customer_id,
        orders.status,
        orders.order_ts,
        {{ utc_date('orders.order_ts') }} as order_date,
        order_items.quantity,
        order_items.unit_price,
        cast(order_items.quantity * order_items.unit_price as numeric(14, 2)) as line_revenue,
        orders.status <> 'cancelled' as is_counted,
        -- when the line or its order was last loaded (the incremental marts' watermark)
        greatest(order_items._loaded_at, orders._loaded_at) as _loaded_at

    from order_items
    inner join orders
        on order_items.order_id = orders.order_id

)

select * from final
