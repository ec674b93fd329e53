-- One row per status version of an order, with how long the order stayed in that status.
-- A version still current has no end and no duration yet.
--
-- Incremental (delete+insert on order_id). A new version of an order also ends the previous
-- one (its valid_to and is_current change), so the unit of recomputation is the order: every
-- version of an order with a version loaded after this table's watermark (the history is
-- partitioned by the order's date: a reload brings all of an order's versions); of those,
-- only the orders whose versions' group_hash changed are written. Versions gone from the
-- source are deleted by the post_hook. `dbt build --full-refresh` rebuilds it.
{{
    config(
        unique_key='order_id',
        indexes=[{'columns': ['order_id']}],
        post_hook="{{ delete_gone_keys(ref('stg_sales__order_status_history'), ['order_id', 'valid_from', 'status']) }}",
    )
}}

with
{{ keys_loaded_since(ref('stg_sales__order_status_history'), 'order_id') }}

history as (

    select * from {{ ref('stg_sales__order_status_history') }}
    {{ in_scope('order_id') }}

),

versions as (

    select
        order_id,
        status,
        valid_from,
        valid_to,
        is_current,
        change_op,
        case
            when valid_to is not null
                then {{ dbt.datediff('valid_from', 'valid_to', 'second') }}
        end as seconds_in_status,
        _loaded_at,
        {{ row_hash(['order_id', 'status', 'valid_from', 'valid_to', 'is_current', 'change_op']) }} as row_hash

    from history

),

order_hashes as (

    select
        order_id,
        max(_loaded_at) as order_loaded_at,
        {{ group_hash('row_hash') }} as order_hash

    from versions
    group by order_id

),

final as (

    select
        versions.order_id,
        versions.status,
        versions.valid_from,
        versions.valid_to,
        versions.is_current,
        versions.change_op,
        versions.seconds_in_status,
        -- the order's: its versions are recomputed together
        order_hashes.order_loaded_at as _loaded_at,
        order_hashes.order_hash

    from versions
    inner join order_hashes
        on versions.order_id = order_hashes.order_id

)

select * from final
{{ only_changed('final', 'order_id', 'order_hash') }}
