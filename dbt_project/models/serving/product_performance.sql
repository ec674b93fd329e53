-- Serving: one row per product in the catalogue (left joins: a product with no sales,
-- events or reviews still has a row, with 0 counts / 0 revenue and a null avg_rating).
--   units_sold, revenue : lines of orders whose current status is not 'cancelled'
--   views, add_to_carts : distinct page_view / add_to_cart events naming the product
--   purchases           : number of distinct non-cancelled orders containing the product
--                         (from the orders, not the purchase events, which carry an
--                         order_id but no product_id)
--   avg_rating          : mean rating of the reviews currently present, 2 decimals
with products as (

    select * from {{ ref('dim_products') }}

),

sales as (

    select
        product_id,
        sum(quantity) as units_sold,
        sum(line_revenue) as revenue,
        count(distinct order_id) as purchases

    from {{ ref('fct_order_items') }}
    where is_counted
    group by product_id

),

product_events as (

    select
        product_id,
        count(distinct case when event_type = 'page_view' then event_id end) as views,
        count(distinct case when event_type = 'add_to_cart' then event_id end) as add_to_carts

    from {{ ref('fct_events') }}
    where product_id is not null
    group by product_id

),

product_reviews as (

    select
        product_id,
        -- cast before avg: Redshift's avg(int) is an integer
        avg(cast(rating as numeric(10, 4))) as avg_rating,
        count(*) as review_count

    from {{ ref('fct_reviews') }}
    group by product_id

)

select
    cast(products.product_id as {{ dbt.type_bigint() }}) as product_id,
    cast(products.product_name as varchar) as name,
    cast(products.category as varchar) as category,
    cast(coalesce(sales.units_sold, 0) as {{ dbt.type_bigint() }}) as units_sold,
    cast(coalesce(sales.revenue, 0) as numeric(14, 2)) as revenue,
    cast(coalesce(product_events.views, 0) as {{ dbt.type_bigint() }}) as views,
    cast(coalesce(product_events.add_to_carts, 0) as {{ dbt.type_bigint() }}) as add_to_carts,
    cast(coalesce(sales.purchases, 0) as {{ dbt.type_bigint() }}) as purchases,
    cast(round(product_reviews.avg_rating, 2) as numeric(4, 2)) as avg_rating,
    cast(coalesce(product_reviews.review_count, 0) as {{ dbt.type_bigint() }}) as review_count

from products
left join sales
    on products.product_id = sales.product_id
left join product_events
    on products.product_id = product_events.product_id
left join product_reviews
    on products.product_id = product_reviews.product_id
