-- Serving: one row per event_date (UTC date of event_ts) with distinct valid events by type,
-- the sessions STARTING that date (the lake's sessions: 30-minute inactivity rule, each
-- anonymous event its own session, see int_sessions; fct_events marks the event(s) that
-- open each session, so a session is counted on the UTC date of its session_start_ts) and
-- conversion_rate = purchases / sessions (null when no session starts that date), rounded
-- to 4 decimals. Reads marts only (serving's layer rule).
-- Computed (incrementally, one date at a time) by agg_funnel_daily; this table is its copy
-- under the serving contract.
select
    cast(event_date as date) as event_date,
    cast(page_views as {{ dbt.type_bigint() }}) as page_views,
    cast(add_to_carts as {{ dbt.type_bigint() }}) as add_to_carts,
    cast(checkouts as {{ dbt.type_bigint() }}) as checkouts,
    cast(purchases as {{ dbt.type_bigint() }}) as purchases,
    cast(sessions as {{ dbt.type_bigint() }}) as sessions,
    cast(conversion_rate as numeric(8, 4)) as conversion_rate

from {{ ref('agg_funnel_daily') }}
