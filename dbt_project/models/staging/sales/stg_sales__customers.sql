-- One row per customer, PII already masked in the lake. Source: sales.customers (landing.customers).
with source as (

    select * from {{ source('sales', 'customers') }}

),

final as (

    select
        customer_id,
        email_hash,
        full_name_masked,
        phone_masked,
        upper(country) as country_code,
        created_at,
        updated_at,
        _loaded_at

    from source

)

select * from final
