-- depends_on: {{ ref('stg_activity__sessions') }}
-- One row per valid user-activity event, with its UTC date and session.
-- Sessions come from the lake (int_sessions over landing.sessions, built by curate_sessions);
-- an event's session is found by time range: a customer's sessions never overlap, so
-- (customer_id, session_start_ts <= event_ts <= session_end_ts) matches exactly one.
-- An anonymous event is its own session 'a-<event_id>'. No fallback: an event the lake's
-- sessions do not cover gets a null session_id and fails the not_null/relationships tests.
--
-- Incremental (delete+insert on event_id). Events are immutable, but a late event can merge
-- or move a customer's sessions, so the unit of recomputation is the customer: every event
-- of a customer with an event or a session loaded after this table's watermark
-- (max(_loaded_at)), and new anonymous events. Of those, only events whose row_hash (values
-- + session) differs from the stored one are written; events gone from landing are deleted
-- (post_hook). `dbt build --full-refresh` rebuilds it.
{{
    config(
        unique_key='event_id',
        indexes=[{'columns': ['event_id'], 'unique': True}, {'columns': ['event_date']}],
        post_hook="{{ delete_gone_keys(ref('stg_activity__events'), ['event_id']) }}",
    )
}}

with
{% call incremental_scope() %}
affected as (

    -- the customers with an event or a session loaded after the watermark
    select customer_id from {{ ref('stg_activity__events') }}
    where _loaded_at > (select loaded_at from watermark) and customer_id is not null
    union
    select customer_id from {{ ref('stg_activity__sessions') }}
    where _loaded_at > (select loaded_at from watermark) and customer_id is not null

),
{% endcall %}

events as (

    select * from {{ ref('stg_activity__events') }}
    {{ in_scope('customer_id', also='customer_id is null and _loaded_at > (select loaded_at from watermark)') }}

),

sessions as (

    select * from {{ ref('int_sessions') }}
    where
        not is_anonymous
        {% if is_incremental() %}and customer_id in (select affected.customer_id from affected){% endif %}

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
        case
            when events.customer_id is null then {{ dbt.concat(["'a-'", 'events.event_id']) }}
            else sessions.session_id
        end as session_id,
        case
            when events.customer_id is null then true
            else events.event_ts = sessions.session_start_ts
        end as is_session_start,
        greatest(events._loaded_at, sessions._loaded_at) as _loaded_at

    from events
    left join sessions
        on
            events.customer_id = sessions.customer_id
            and events.event_ts >= sessions.session_start_ts
            and events.event_ts <= sessions.session_end_ts

),

final as (

    select
        joined.*,
        {{ row_hash(['event_id', 'event_type', 'event_ts', 'customer_id', 'product_id', 'order_id',
                     'page', 'quantity', 'session_id', 'is_session_start']) }} as row_hash

    from joined

)

select * from final
{{ only_changed('final', 'event_id') }}
