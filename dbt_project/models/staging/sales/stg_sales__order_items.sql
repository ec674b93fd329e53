-- One row per order line (order_id, line_no). Source: sales.order_items (landing.order_items).
with source as (

    select * from {{ source('sales', 'order_items') }}

),

final as (

    select
        order_id,
        line_no,
        product_id,
        quantity,
        unit_price,
        order_date,
        _loaded_at

    from source

)

select * from final
