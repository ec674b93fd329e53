-- One row per product review currently present.
select
    review_id,
    product_id,
    customer_id,
    rating,
    title,
    body,
    created_at,
    {{ utc_date('created_at') }} as review_date

from {{ ref('stg_reviews__reviews') }}
