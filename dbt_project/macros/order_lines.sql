{#-
  The SQL of int_order_lines (one row per order line, enriched with its order), for the
  orders of `order_ids` (a subquery) only when given: fct_order_items' incremental path
  filters both inputs before the join (filtering the view's output would join every line
  first). One definition for both, so they cannot drift apart.
-#}
{% macro order_lines(order_ids=none) %}
with order_items as (

    select * from {{ ref('stg_sales__order_items') }}
    {% if order_ids %}where order_id in ({{ order_ids }}){% endif %}

),

orders as (

    select * from {{ ref('stg_sales__orders') }}
    {% if order_ids %}where order_id in ({{ order_ids }}){% endif %}

),

joined as (

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

select * from joined
{% endmacro %}
