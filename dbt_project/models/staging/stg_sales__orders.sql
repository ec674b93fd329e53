-- One row per order (current state). Source: landing.orders.
with source as (

    select * from {{ source('landing', 'orders') }}

),

renamed as (

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

select * from renamed
