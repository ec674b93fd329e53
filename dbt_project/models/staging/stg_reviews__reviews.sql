-- One row per product review currently present. Source: landing.reviews.
with source as (

    select * from {{ source('landing', 'reviews') }}

),

renamed as (

    select
        review_id,
        product_id,
        customer_id,
        rating,
        title,
        body,
        created_at,
        _loaded_at

    from source

)

select * from renamed
