-- schema.sql - the demo order service's own table. Load sql/outbox.sql into the same
-- database: an order and its outbox event are written in one transaction.
CREATE TABLE IF NOT EXISTS public.orders (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer   text        NOT NULL,
    sku        text        NOT NULL,
    qty        integer     NOT NULL CHECK (qty > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
