-- A status version does not end before it starts. It can only happen when the source's
-- updated_at goes back in time between two changes of an order: a data-quality warning
-- about the source, not a reason to stop the pipeline.
{{ config(severity='warn') }}

select order_id
from {{ ref('fct_order_status_changes') }}
where valid_to < valid_from
