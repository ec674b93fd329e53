-- One row per product review currently present.
--
-- Incremental (delete+insert on review_id): the reviews loaded after this table's watermark
-- (landing.reviews is reloaded whole when the export changes) whose row_hash differs from the
-- stored one are written; reviews gone from the source are deleted by the post_hook.
{{
    config(
        unique_key='review_id',
        indexes=[{'columns': ['review_id'], 'unique': True}],
        post_hook="{{ delete_gone_keys(ref('stg_reviews__reviews'), ['review_id']) }}",
    )
}}

with
{{ keys_loaded_since(ref('stg_reviews__reviews'), 'review_id') }}

reviews as (

    select * from {{ ref('stg_reviews__reviews') }}
    {{ in_scope('review_id') }}

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
        {{ utc_date('created_at') }} as review_date,
        _loaded_at,
        {{ row_hash(['review_id', 'product_id', 'customer_id', 'rating', 'title', 'body',
                     'created_at']) }} as row_hash

    from reviews

)

select * from final
{{ only_changed('final', 'review_id') }}
