-- One row per product (current catalogue, active or not). A table, rebuilt every run (small).
{{ config(materialized='table') }}

select
    product_id,
    sku,
    product_name,
    category,
    description,
    unit_price,
    is_active,
    updated_at

from {{ ref('stg_sales__products') }}
