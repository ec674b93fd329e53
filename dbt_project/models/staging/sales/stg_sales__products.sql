-- One row per product. Source: sales.products (landing.products).
with source as (

    select * from {{ source('sales', 'products') }}

),

final as (

    select
        product_id,
        sku,
        name as product_name,
        category,
        description,
        unit_price,
        active as is_active,
        updated_at

    from source

)

select * from final
