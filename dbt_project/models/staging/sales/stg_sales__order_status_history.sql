-- One row per status version of an order (SCD type 2).
-- Source: sales.order_status_history (landing.order_status_history).
with source as (

    select * from {{ source('sales', 'order_status_history') }}

),

final as (

    select
        order_id,
        lower(status) as status,
        valid_from,
        valid_to,
        is_current,
        change_op,
        _loaded_at

    from source

)

select * from final
