-- One row per valid user-activity event. Source: activity.events (landing.events).
with source as (

    select * from {{ source('activity', 'events') }}

),

final as (

    select
        event_id,
        lower(event_type) as event_type,
        event_ts,
        customer_id,
        product_id,
        order_id,
        page,
        quantity,
        event_date,
        _loaded_at

    from source

)

select * from final
