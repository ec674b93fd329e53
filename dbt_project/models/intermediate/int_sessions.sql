-- One row per session of user activity.
--
-- Rule: a customer's events are split into sessions at gaps of MORE than 30 minutes
-- between consecutive events (ordered by event_ts, then event_id for ties).
-- Anonymous events (customer_id is null) cannot be attributed to a visitor, so EACH
-- anonymous event is its own one-event session (a conservative choice: it never merges
-- two visitors; it over-counts sessions of anonymous visitors who view several pages).
--
-- session_id: 'c<customer_id>-<n>' (n = 1, 2, ... per customer, in time order) or
-- 'a-<event_id>' for an anonymous event. session_date = UTC date of session_start_ts.
with events as (

    select * from {{ ref('stg_activity__events') }}

),

customer_events as (

    select
        customer_id,
        event_id,
        event_ts,
        event_type,
        lag(event_ts) over (
            partition by customer_id order by event_ts, event_id
        ) as previous_event_ts

    from events
    where customer_id is not null

),

flagged as (

    select
        *,
        -- exact interval arithmetic (timezone-independent); datediff would count
        -- boundary crossings at a chosen granularity instead
        case
            when previous_event_ts is null then 1
            when event_ts > {{ dbt.dateadd('minute', 30, 'previous_event_ts') }} then 1
            else 0
        end as is_session_start

    from customer_events

),

numbered as (

    select
        *,
        sum(is_session_start) over (
            partition by customer_id order by event_ts, event_id
            rows between unbounded preceding and current row
        ) as session_number

    from flagged

),

customer_sessions as (

    select
        {{ dbt.concat([
            "'c'",
            dbt.safe_cast('customer_id', api.Column.translate_type('string')),
            "'-'",
            dbt.safe_cast('session_number', api.Column.translate_type('string')),
        ]) }} as session_id,
        customer_id,
        session_number,
        min(event_ts) as session_start_ts,
        max(event_ts) as session_end_ts,
        count(*) as event_count,
        sum(case when event_type = 'page_view' then 1 else 0 end) as page_views,
        sum(case when event_type = 'add_to_cart' then 1 else 0 end) as add_to_carts,
        sum(case when event_type = 'checkout' then 1 else 0 end) as checkouts,
        sum(case when event_type = 'purchase' then 1 else 0 end) as purchases

    from numbered
    group by customer_id, session_number

),

anonymous_sessions as (

    select
        {{ dbt.concat(["'a-'", 'event_id']) }} as session_id,
        customer_id,
        cast(1 as {{ dbt.type_bigint() }}) as session_number,
        event_ts as session_start_ts,
        event_ts as session_end_ts,
        1 as event_count,
        case when event_type = 'page_view' then 1 else 0 end as page_views,
        case when event_type = 'add_to_cart' then 1 else 0 end as add_to_carts,
        case when event_type = 'checkout' then 1 else 0 end as checkouts,
        case when event_type = 'purchase' then 1 else 0 end as purchases

    from events
    where customer_id is null

),

sessions as (

    select * from customer_sessions
    union all
    select * from anonymous_sessions

)

select
    session_id,
    customer_id,
    session_number,
    session_start_ts,
    session_end_ts,
    {{ utc_date('session_start_ts') }} as session_date,
    cast(event_count as {{ dbt.type_bigint() }}) as event_count,
    cast(page_views as {{ dbt.type_bigint() }}) as page_views,
    cast(add_to_carts as {{ dbt.type_bigint() }}) as add_to_carts,
    cast(checkouts as {{ dbt.type_bigint() }}) as checkouts,
    cast(purchases as {{ dbt.type_bigint() }}) as purchases,
    customer_id is null as is_anonymous

from sessions
