-- One row per customer with lifetime order metrics (counted orders only: not cancelled).
--
-- Incremental (delete+insert on customer_id), after fct_orders (it reads the mart, so it
-- sees the orders fct_orders changed in this same run). A customer is recomputed when
--   (a) its customer row was loaded after this table's watermark (max(_loaded_at): the
--       latest load of a customer row or of an order fct_orders wrote, per customer);
--   (b) fct_orders holds an order of the customer written after that watermark: fct_orders
--       rewrites an order only when its content changed, with the _loaded_at of the load
--       that brought it, which is later than any load this table has seen (dbt_build runs
--       after warehouse_load, never during it);
--   (c) its stored order_count differs from its counted orders in fct_orders now: an order
--       that LEFT the customer (deleted, moved to another customer) is no longer in
--       fct_orders, so (b) cannot see it; losing an order without gaining one (that would be
--       (b)) lowers the count. A cancelled order counts nowhere, so losing one changes nothing.
-- Of those, only customers whose row_hash changed are written; customers gone from the
-- source are deleted by the post_hook. `dbt build --full-refresh` rebuilds it.
{{
    config(
        unique_key='customer_id',
        indexes=[{'columns': ['customer_id'], 'unique': True}],
        post_hook="{{ delete_gone_keys(ref('stg_sales__customers'), ['customer_id']) }}",
    )
}}

with
{% call incremental_scope() %}

counted_now as (

    select
        customer_id,
        count(*) as order_count

    from {{ ref('fct_orders') }}
    where is_counted
    group by customer_id

),

affected as (

    select customer_id from {{ ref('stg_sales__customers') }}
    where _loaded_at > (select loaded_at from watermark)
    union
    select customer_id from {{ ref('fct_orders') }}
    where _loaded_at > (select loaded_at from watermark)
    union
    select current_rows.customer_id from {{ this }} as current_rows
    left join counted_now
        on current_rows.customer_id = counted_now.customer_id
    where current_rows.order_count <> coalesce(counted_now.order_count, 0)

),
{% endcall %}

customers as (

    select * from {{ ref('stg_sales__customers') }}
    {{ in_scope('customer_id') }}

),

orders as (

    select * from {{ ref('fct_orders') }}
    {{ in_scope('customer_id') }}

),

customer_orders as (

    -- every order (cancelled too) for _loaded_at; the metrics over counted orders only
    select
        customer_id,
        min(case when is_counted then order_ts end) as first_order_ts,
        max(case when is_counted then order_ts end) as last_order_ts,
        count(case when is_counted then order_id end) as order_count,
        sum(case when is_counted then order_revenue end) as lifetime_revenue,
        max(_loaded_at) as orders_loaded_at

    from orders
    group by customer_id

),

customer_rows as (

    select
        customers.customer_id,
        customers.email_hash,
        customers.full_name_masked,
        customers.phone_masked,
        customers.country_code,
        customers.created_at,
        customers.updated_at,
        customer_orders.first_order_ts,
        customer_orders.last_order_ts,
        cast(coalesce(customer_orders.order_count, 0) as {{ dbt.type_bigint() }}) as order_count,
        cast(coalesce(customer_orders.lifetime_revenue, 0) as numeric(14, 2)) as lifetime_revenue,
        greatest(customers._loaded_at, customer_orders.orders_loaded_at) as _loaded_at

    from customers
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id

),

final as (

    select
        customer_rows.*,
        {{ row_hash(['customer_id', 'email_hash', 'full_name_masked', 'phone_masked', 'country_code',
                     'created_at', 'updated_at', 'first_order_ts', 'last_order_ts', 'order_count',
                     'lifetime_revenue']) }} as row_hash

    from customer_rows

)

select * from final
{{ only_changed('final', 'customer_id') }}
