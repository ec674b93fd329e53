-- The RDS stand-in: database `sales`, schema `public`. Applied idempotently by
-- lifecycle.sources.sales_db.ensure_schema().
CREATE TABLE IF NOT EXISTS public.customers (
    customer_id bigint PRIMARY KEY,
    email       text NOT NULL,
    full_name   text NOT NULL,
    phone       text,
    country     char(2) NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS public.products (
    product_id  bigint PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    category    text NOT NULL,
    description text,
    unit_price  numeric(10,2) NOT NULL CHECK (unit_price >= 0),
    active      boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS public.orders (
    order_id    bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES public.customers,
    status      text NOT NULL CHECK (status IN ('placed','paid','shipped','delivered','cancelled')),
    order_ts    timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS public.order_items (
    order_id    bigint NOT NULL REFERENCES public.orders ON DELETE CASCADE,
    line_no     int NOT NULL,
    product_id  bigint NOT NULL REFERENCES public.products,
    quantity    int NOT NULL CHECK (quantity > 0),
    unit_price  numeric(10,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
-- what the CDC reader publishes (DMS reads the same through its own slot)
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'lifecycle_cdc') THEN
        CREATE PUBLICATION lifecycle_cdc FOR TABLE public.customers, public.products,
            public.orders, public.order_items;
    END IF;
END $$;
-- the simulator's own bookkeeping lives outside the replicated schema
CREATE SCHEMA IF NOT EXISTS simulator;
CREATE TABLE IF NOT EXISTS simulator.runs (
    business_date date NOT NULL,
    seed          bigint NOT NULL,
    scale         int NOT NULL,
    summary       jsonb NOT NULL,
    PRIMARY KEY (business_date, seed)
);
