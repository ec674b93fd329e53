-- One row per order (current state) with its line totals.
-- An order without lines keeps 0 lines / 0 revenue (left join).
with orders as (

    select * from {{ ref('stg_sales__orders') }}

),

order_lines as (

    select * from {{ ref('int_order_lines') }}

),

line_totals as (

    select
        order_id,
        count(*) as line_count,
        sum(quantity) as item_quantity,
        sum(line_revenue) as order_revenue

    from order_lines
    group by order_id

)

select
    orders.order_id,
    orders.customer_id,
    orders.status,
    orders.status <> 'cancelled' as is_counted,
    orders.order_ts,
    {{ utc_date('orders.order_ts') }} as order_date,
    orders.updated_at,
    cast(coalesce(line_totals.line_count, 0) as {{ dbt.type_bigint() }}) as line_count,
    cast(coalesce(line_totals.item_quantity, 0) as {{ dbt.type_bigint() }}) as item_quantity,
    cast(coalesce(line_totals.order_revenue, 0) as numeric(14, 2)) as order_revenue

from orders
left join line_totals
    on orders.order_id = line_totals.order_id
