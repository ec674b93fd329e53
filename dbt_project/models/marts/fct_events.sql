-- One row per valid user-activity event, with its UTC date and session.
-- The session is found by time range in int_sessions (a customer's sessions never overlap);
-- an anonymous event is its own session 'a-<event_id>' (see int_sessions).
with events as (

    select * from {{ ref('stg_activity__events') }}

),

sessions as (

    select * from {{ ref('int_sessions') }}
    where not is_anonymous

),

joined as (

    select
        events.event_id,
        events.event_type,
        events.event_ts,
        {{ utc_date('events.event_ts') }} as event_date,
        events.customer_id,
        events.product_id,
        events.order_id,
        events.page,
        events.quantity,
        coalesce(sessions.session_id, {{ dbt.concat(["'a-'", 'events.event_id']) }}) as session_id,
        case
            when events.customer_id is null then true
            else events.event_ts = sessions.session_start_ts
        end as is_session_start

    from events
    left join sessions
        on events.customer_id = sessions.customer_id
        and events.event_ts >= sessions.session_start_ts
        and events.event_ts <= sessions.session_end_ts

)

select * from joined
