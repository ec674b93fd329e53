-- One row per session of user activity, as the lake built it (curate_sessions job).
--
-- The rule is NOT computed here: the lake splits a customer's events (ordered by event_ts,
-- then event_id) at gaps of MORE than 30 minutes, makes each anonymous event (customer_id
-- null) its own one-event session, and names them 'c<customer_id>-<n>' / 'a-<event_id>';
-- session_date is the UTC date of session_start_ts. This model only adds is_anonymous, so
-- that one session definition serves the lake (Athena) and the warehouse alike.
with sessions as (

    select * from {{ ref('stg_activity__sessions') }}

)

select
    session_id,
    customer_id,
    session_start_ts,
    session_end_ts,
    session_date,
    event_count,
    page_views,
    add_to_carts,
    checkouts,
    purchases,
    converted,
    customer_id is null as is_anonymous,
    _loaded_at

from sessions
