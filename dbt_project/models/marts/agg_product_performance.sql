-- One row per product of the catalogue (dim_products) with the metrics serving's
-- product_performance shows (definitions there): sales of counted order lines, page_view /
-- add_to_cart events naming the product, reviews. Kept incrementally so that the serving
-- table is dim_products joined to a small table.
--
-- Incremental (delete+insert on product_id). A product is recomputed from ALL of its rows in
-- the marts (count(distinct order_id) cannot be updated by deltas) when
--   (a) it is new in dim_products;
--   (b) fct_order_items, fct_events or fct_reviews holds a row of it written after this
--       table's watermark (the marts rewrite a row only when it changed, with the
--       _loaded_at of the load that brought it);
--   (c) a stored row count differs from the mart now (line_rows: counted lines,
--       event_rows: page_view/add_to_cart events, review_count): a row that LEFT the product
--       (deleted, cancelled, moved) is not in (b) for it.
-- Of those, only products whose row_hash changed are written; products gone from
-- dim_products are deleted by the post_hook. `dbt build --full-refresh` rebuilds it.
{{
    config(
        unique_key='product_id',
        indexes=[{'columns': ['product_id'], 'unique': True}],
        post_hook="{{ delete_gone_keys(ref('dim_products'), ['product_id']) }}",
    )
}}

with
{% call incremental_scope() %}

rows_now as (

    select
        product_id,
        sum(line_rows) as line_rows,
        sum(event_rows) as event_rows,
        sum(review_count) as review_count

    from (
        select
            product_id,
            count(*) as line_rows,
            0 as event_rows,
            0 as review_count
        from {{ ref('fct_order_items') }}
        where is_counted
        group by product_id
        union all
        select
            product_id,
            0 as line_rows,
            count(*) as event_rows,
            0 as review_count
        from {{ ref('fct_events') }}
        where event_type in ('page_view', 'add_to_cart')
        group by product_id
        union all
        select
            product_id,
            0 as line_rows,
            0 as event_rows,
            count(*) as review_count
        from {{ ref('fct_reviews') }}
        group by product_id
    ) as per_mart
    group by product_id

),

affected as (

    select product_id from {{ ref('dim_products') }}
    where product_id not in (select current_rows.product_id from {{ this }} as current_rows)
    union
    select product_id from {{ ref('fct_order_items') }}
    where _loaded_at > (select loaded_at from watermark)
    union
    select product_id from {{ ref('fct_events') }}
    where _loaded_at > (select loaded_at from watermark) and product_id is not null
    union
    select product_id from {{ ref('fct_reviews') }}
    where _loaded_at > (select loaded_at from watermark)
    union
    select current_rows.product_id from {{ this }} as current_rows
    left join rows_now
        on current_rows.product_id = rows_now.product_id
    where
        current_rows.line_rows <> coalesce(rows_now.line_rows, 0)
        or current_rows.event_rows <> coalesce(rows_now.event_rows, 0)
        or current_rows.review_count <> coalesce(rows_now.review_count, 0)

),
{% endcall %}

products as (

    select product_id from {{ ref('dim_products') }}
    {{ in_scope('product_id') }}

),

sales as (

    select
        product_id,
        sum(quantity) as units_sold,
        sum(line_revenue) as revenue,
        count(distinct order_id) as purchases,
        count(*) as line_rows,
        max(_loaded_at) as _loaded_at

    from {{ ref('fct_order_items') }}
    where
        is_counted
        {% if is_incremental() %}and product_id in (select product_id from affected){% endif %}
    group by product_id

),

product_events as (

    select
        product_id,
        count(distinct case when event_type = 'page_view' then event_id end) as views,
        count(distinct case when event_type = 'add_to_cart' then event_id end) as add_to_carts,
        count(case when event_type in ('page_view', 'add_to_cart') then event_id end) as event_rows,
        max(_loaded_at) as _loaded_at

    from {{ ref('fct_events') }}
    where
        product_id is not null
        {% if is_incremental() %}and product_id in (select product_id from affected){% endif %}
    group by product_id

),

product_reviews as (

    select
        product_id,
        -- cast before avg: Redshift's avg(int) is an integer
        avg(cast(rating as numeric(10, 4))) as avg_rating,
        count(*) as review_count,
        max(_loaded_at) as _loaded_at

    from {{ ref('fct_reviews') }}
    {{ in_scope('product_id') }}
    group by product_id

),

product_rows as (

    select
        products.product_id,
        cast(coalesce(sales.units_sold, 0) as {{ dbt.type_bigint() }}) as units_sold,
        cast(coalesce(sales.revenue, 0) as numeric(14, 2)) as revenue,
        cast(coalesce(product_events.views, 0) as {{ dbt.type_bigint() }}) as views,
        cast(coalesce(product_events.add_to_carts, 0) as {{ dbt.type_bigint() }}) as add_to_carts,
        cast(coalesce(sales.purchases, 0) as {{ dbt.type_bigint() }}) as purchases,
        cast(round(product_reviews.avg_rating, 2) as numeric(4, 2)) as avg_rating,
        cast(coalesce(product_reviews.review_count, 0) as {{ dbt.type_bigint() }}) as review_count,
        cast(coalesce(sales.line_rows, 0) as {{ dbt.type_bigint() }}) as line_rows,
        cast(coalesce(product_events.event_rows, 0) as {{ dbt.type_bigint() }}) as event_rows,
        greatest(sales._loaded_at, product_events._loaded_at, product_reviews._loaded_at) as _loaded_at

    from products
    left join sales
        on products.product_id = sales.product_id
    left join product_events
        on products.product_id = product_events.product_id
    left join product_reviews
        on products.product_id = product_reviews.product_id

),

final as (

    select
        product_rows.*,
        {{ row_hash(['product_id', 'units_sold', 'revenue', 'views', 'add_to_carts', 'purchases',
                     'avg_rating', 'review_count', 'line_rows', 'event_rows']) }} as row_hash

    from product_rows

)

select * from final
{{ only_changed('final', 'product_id') }}
