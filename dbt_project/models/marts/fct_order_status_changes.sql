-- One row per status version of an order, with how long the order stayed in that status.
-- A version still current has no end and no duration yet.
with history as (

    select * from {{ ref('stg_sales__order_status_history') }}

)

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
    end as seconds_in_status

from history
