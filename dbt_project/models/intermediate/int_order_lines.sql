-- One row per order line, enriched with its order.
-- line_revenue = quantity * unit_price (the line's own price, as charged);
-- is_counted   = the order's CURRENT status is not 'cancelled' (what daily_sales counts).
-- The SQL is macros/order_lines.sql (shared with fct_order_items' incremental path).
{{ order_lines() }}
