-- One row per session of user activity. Source: activity.sessions (landing.sessions) (built in the lake by the
-- curate_sessions job: the session rule lives there, not here).
with source as (

    select * from {{ source('activity', 'sessions') }}

),

final as (

    select
        session_id,
        customer_id,
        session_start as session_start_ts,
        session_end as session_end_ts,
        session_date,
        event_count,
        page_views,
        add_to_carts,
        checkouts,
        purchases,
        converted,
        _loaded_at

    from source

)

select * from final
