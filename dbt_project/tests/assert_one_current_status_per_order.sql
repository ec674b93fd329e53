-- An order has at most one current status version (an SCD2 replay bug otherwise).
select order_id
from {{ ref('fct_order_status_changes') }}
where is_current
group by order_id
having count(*) > 1
