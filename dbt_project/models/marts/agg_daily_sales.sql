-- One row per order_date with at least one counted order: what serving.daily_sales shows
-- (orders, items, revenue, distinct customers over the orders whose current status is not
-- 'cancelled'), kept incrementally so that the serving table is a copy of a small table.
--
-- Incremental (delete+insert on order_date). A date is recomputed from ALL of its orders in
-- fct_orders (count(distinct customer_id) cannot be updated by deltas) when
--   (b) fct_orders holds an order of that date written after this table's watermark (the
--       latest fct_orders _loaded_at of the dates written; fct_orders rewrites an order only
--       when it changed, cancelled or not, with the _loaded_at of the load that brought it);
--   (c) its stored order count differs from its counted orders in fct_orders now: an order
--       that LEFT the date (deleted, cancelled, moved to another date) is not in (b) for it.
-- Of those, only dates whose row_hash changed are written; a date left without counted
-- orders is deleted by the post_hook. `dbt build --full-refresh` rebuilds it.
{{
    config(
        unique_key='order_date',
        indexes=[{'columns': ['order_date'], 'unique': True}],
        post_hook="{{ delete_gone_keys(ref('fct_orders'), ['order_date'], 's.is_counted') }}",
    )
}}

with
{% call incremental_scope() %}
counted_now as (

    select
        order_date,
        count(*) as orders

    from {{ ref('fct_orders') }}
    where is_counted
    group by order_date

),

affected as (

    select order_date from {{ ref('fct_orders') }}
    where _loaded_at > (select loaded_at from watermark)
    union
    select current_rows.order_date from {{ this }} as current_rows
    left join counted_now
        on current_rows.order_date = counted_now.order_date
    where current_rows.orders <> coalesce(counted_now.orders, 0)

),
{% endcall %}

orders as (

    select * from {{ ref('fct_orders') }}
    {{ in_scope('order_date') }}

),

daily as (

    -- every order of the date (cancelled too) for _loaded_at; the figures over counted ones
    select
        order_date,
        count(case when is_counted then order_id end) as orders,
        coalesce(sum(case when is_counted then item_quantity end), 0) as items,
        coalesce(sum(case when is_counted then order_revenue end), 0) as revenue,
        count(distinct case when is_counted then customer_id end) as customers,
        max(_loaded_at) as _loaded_at

    from orders
    group by order_date

),

final as (

    select
        cast(order_date as date) as order_date,
        cast(orders as {{ dbt.type_bigint() }}) as orders,
        cast(items as {{ dbt.type_bigint() }}) as items,
        cast(revenue as numeric(14, 2)) as revenue,
        cast(customers as {{ dbt.type_bigint() }}) as customers,
        _loaded_at,
        {{ row_hash(['order_date', 'orders', 'items', 'revenue', 'customers']) }} as row_hash

    from daily
    where orders > 0

)

select * from final
{{ only_changed('final', 'order_date') }}
