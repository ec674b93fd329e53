-- Serving: one row per order_date (UTC date of order_ts).
-- Counts orders whose CURRENT status is not 'cancelled'; items = sum of quantity,
-- revenue = sum of quantity * unit_price of their lines, customers = distinct customers.
-- A date whose orders are all cancelled has no row.
with counted_orders as (

    select * from {{ ref('fct_orders') }}
    where is_counted

)

select
    cast(order_date as date) as order_date,
    cast(count(*) as {{ dbt.type_bigint() }}) as orders,
    cast(coalesce(sum(item_quantity), 0) as {{ dbt.type_bigint() }}) as items,
    cast(coalesce(sum(order_revenue), 0) as numeric(14, 2)) as revenue,
    cast(count(distinct customer_id) as {{ dbt.type_bigint() }}) as customers

from counted_orders
group by order_date
