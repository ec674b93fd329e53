-- One row per order (current state). Source: sales.orders (landing.orders).
with source as (

    select * from {{ source('sales', 'orders') }}

),

final as (

    select
        order_id,
        customer_id,
        lower(status) as status,
        order_ts,
        updated_at,
        order_date,
        _loaded_at

    from source

)

select * from final
