-- One row per product. Source: landing.products.
with source as (

    select * from {{ source('landing', 'products') }}

),

renamed as (

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

select * from renamed
