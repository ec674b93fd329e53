-- One row per customer with lifetime order metrics (counted orders only: not cancelled).
with customers as (

    select * from {{ ref('stg_sales__customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}
    where is_counted

),

customer_orders as (

    select
        customer_id,
        min(order_ts) as first_order_ts,
        max(order_ts) as last_order_ts,
        count(*) as order_count,
        sum(order_revenue) as lifetime_revenue

    from orders
    group by customer_id

)

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
    cast(coalesce(customer_orders.lifetime_revenue, 0) as numeric(14, 2)) as lifetime_revenue

from customers
left join customer_orders
    on customers.customer_id = customer_orders.customer_id
