-- Serving: one row per order_date (UTC date of order_ts).
-- Counts orders whose CURRENT status is not 'cancelled'; items = sum of quantity,
-- revenue = sum of quantity * unit_price of their lines, customers = distinct customers.
-- A date whose orders are all cancelled has no row.
-- Computed (incrementally, one date at a time) by agg_daily_sales; this table is its copy
-- under the serving contract.
select
    cast(order_date as date) as order_date,
    cast(orders as {{ dbt.type_bigint() }}) as orders,
    cast(items as {{ dbt.type_bigint() }}) as items,
    cast(revenue as numeric(14, 2)) as revenue,
    cast(customers as {{ dbt.type_bigint() }}) as customers

from {{ ref('agg_daily_sales') }}
