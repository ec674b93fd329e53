-- Serving: one row per product in the catalogue (left joins: a product with no sales,
-- events or reviews still has a row, with 0 counts / 0 revenue and a null avg_rating).
--   units_sold, revenue : lines of orders whose current status is not 'cancelled'
--   views, add_to_carts : distinct page_view / add_to_cart events naming the product
--   purchases           : number of distinct non-cancelled orders containing the product
--                         (from the orders, not the purchase events, which carry an
--                         order_id but no product_id)
--   avg_rating          : mean rating of the reviews currently present, 2 decimals
-- The metrics are computed (incrementally, one product at a time) by agg_product_performance;
-- this table joins them to the catalogue under the serving contract.
select
    cast(products.product_id as {{ dbt.type_bigint() }}) as product_id,
    cast(products.product_name as varchar) as name,
    cast(products.category as varchar) as category,
    cast(coalesce(metrics.units_sold, 0) as {{ dbt.type_bigint() }}) as units_sold,
    cast(coalesce(metrics.revenue, 0) as numeric(14, 2)) as revenue,
    cast(coalesce(metrics.views, 0) as {{ dbt.type_bigint() }}) as views,
    cast(coalesce(metrics.add_to_carts, 0) as {{ dbt.type_bigint() }}) as add_to_carts,
    cast(coalesce(metrics.purchases, 0) as {{ dbt.type_bigint() }}) as purchases,
    cast(metrics.avg_rating as numeric(4, 2)) as avg_rating,
    cast(coalesce(metrics.review_count, 0) as {{ dbt.type_bigint() }}) as review_count

from {{ ref('dim_products') }} as products
left join {{ ref('agg_product_performance') }} as metrics
    on products.product_id = metrics.product_id
