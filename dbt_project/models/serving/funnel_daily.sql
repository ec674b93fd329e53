-- Serving: one row per event_date (UTC date of event_ts) with distinct valid events by type,
-- the sessions STARTING that date (the lake's sessions: 30-minute inactivity rule, each
-- anonymous event its own session, see int_sessions; fct_events marks the event(s) that
-- open each session, so a session is counted on the UTC date of its session_start_ts) and
-- conversion_rate = purchases / sessions (null when no session starts that date), rounded
-- to 4 decimals. Reads marts only (serving's layer rule).
with events as (

    select * from {{ ref('fct_events') }}

),

daily as (

    select
        event_date,
        count(distinct case when event_type = 'page_view' then event_id end) as page_views,
        count(distinct case when event_type = 'add_to_cart' then event_id end) as add_to_carts,
        count(distinct case when event_type = 'checkout' then event_id end) as checkouts,
        count(distinct case when event_type = 'purchase' then event_id end) as purchases,
        count(distinct case when is_session_start then session_id end) as sessions

    from events
    group by event_date

)

select
    cast(event_date as date) as event_date,
    cast(page_views as {{ dbt.type_bigint() }}) as page_views,
    cast(add_to_carts as {{ dbt.type_bigint() }}) as add_to_carts,
    cast(checkouts as {{ dbt.type_bigint() }}) as checkouts,
    cast(purchases as {{ dbt.type_bigint() }}) as purchases,
    cast(sessions as {{ dbt.type_bigint() }}) as sessions,
    cast(
        round(cast(purchases as numeric(18, 6)) / nullif(sessions, 0), 4) as numeric(8, 4)
    ) as conversion_rate

from daily
