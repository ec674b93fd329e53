-- One row per product review currently present. Source: reviews.reviews (landing.reviews).
with source as (

    select * from {{ source('reviews', 'reviews') }}

),

final as (

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

select * from final
