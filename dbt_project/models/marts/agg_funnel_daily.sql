-- One row per event_date: what serving.funnel_daily shows (distinct valid events by type,
-- the sessions starting that date, purchases / sessions), kept incrementally so that the
-- serving table is a copy of a small table. Definitions: funnel_daily.sql.
--
-- Incremental (delete+insert on event_date). A date is recomputed from ALL of its events in
-- fct_events (distinct counts cannot be updated by deltas) when
--   (b) fct_events holds an event of that date written after this table's watermark
--       (fct_events rewrites an event only when it changed, its session or session start
--       included, with the _loaded_at of the load that brought it);
--   (c) its stored event_rows differs from its events in fct_events now: an event that LEFT
--       the date (deleted, moved to another date) is not in (b) for it.
-- Of those, only dates whose row_hash changed are written; a date left without events is
-- deleted by the post_hook. `dbt build --full-refresh` rebuilds it.
{{
    config(
        unique_key='event_date',
        indexes=[{'columns': ['event_date'], 'unique': True}],
        post_hook="{{ delete_gone_keys(ref('fct_events'), ['event_date']) }}",
    )
}}

with
{% call incremental_scope() %}
events_now as (

    select
        event_date,
        count(*) as event_rows

    from {{ ref('fct_events') }}
    group by event_date

),

affected as (

    select event_date from {{ ref('fct_events') }}
    where _loaded_at > (select loaded_at from watermark)
    union
    select current_rows.event_date from {{ this }} as current_rows
    left join events_now
        on current_rows.event_date = events_now.event_date
    where current_rows.event_rows <> coalesce(events_now.event_rows, 0)

),
{% endcall %}

events as (

    select * from {{ ref('fct_events') }}
    {{ in_scope('event_date') }}

),

daily as (

    select
        event_date,
        count(distinct case when event_type = 'page_view' then event_id end) as page_views,
        count(distinct case when event_type = 'add_to_cart' then event_id end) as add_to_carts,
        count(distinct case when event_type = 'checkout' then event_id end) as checkouts,
        count(distinct case when event_type = 'purchase' then event_id end) as purchases,
        count(distinct case when is_session_start then session_id end) as sessions,
        count(*) as event_rows,
        max(_loaded_at) as _loaded_at

    from events
    group by event_date

),

final as (

    select
        cast(event_date as date) as event_date,
        cast(page_views as {{ dbt.type_bigint() }}) as page_views,
        cast(add_to_carts as {{ dbt.type_bigint() }}) as add_to_carts,
        cast(checkouts as {{ dbt.type_bigint() }}) as checkouts,
        cast(purchases as {{ dbt.type_bigint() }}) as purchases,
        cast(sessions as {{ dbt.type_bigint() }}) as sessions,
        cast(
            round(cast(purchases as numeric(18, 6)) / nullif(sessions, 0), 4) as numeric(8, 4)
        ) as conversion_rate,
        cast(event_rows as {{ dbt.type_bigint() }}) as event_rows,
        _loaded_at,
        {{ row_hash(['event_date', 'page_views', 'add_to_carts', 'checkouts', 'purchases', 'sessions',
                     'event_rows']) }} as row_hash

    from daily

)

select * from final
{{ only_changed('final', 'event_date') }}
