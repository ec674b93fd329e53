-- One row per order line, with the order's status and date (from int_order_lines).
select
    order_line_id,
    order_id,
    line_no,
    product_id,
    customer_id,
    status,
    is_counted,
    order_ts,
    order_date,
    quantity,
    unit_price,
    line_revenue

from {{ ref('int_order_lines') }}
