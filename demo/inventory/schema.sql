-- schema.sql - the demo inventory service: its stock, its log of applied orders and the
-- function that processes its inbox. Load sql/inbox.sql into the same database first
-- (inboxd records the order events in its inbox table).
CREATE TABLE IF NOT EXISTS public.stock (
    sku     text    PRIMARY KEY,
    on_hand integer NOT NULL
);
INSERT INTO public.stock (sku, on_hand)
VALUES ('A-100', 1000), ('B-200', 1000), ('C-300', 1000)
ON CONFLICT (sku) DO NOTHING;

-- One row per order applied to the stock. The primary key on the message id is a second,
-- independent check: applying one message twice would fail here instead of double-counting.
CREATE TABLE IF NOT EXISTS public.stock_changes (
    message_id text        PRIMARY KEY,
    order_id   bigint      NOT NULL,
    sku        text        NOT NULL,
    qty        integer     NOT NULL,
    on_hand    integer     NOT NULL,  -- after the change
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- inventory_process - claims up to n messages from the inbox, takes each order's quantity
-- off the stock and marks the message done. Call it inside a transaction, which the
-- service commits: the stock change and the done mark commit together (exactly-once
-- processing); if the transaction rolls back, the messages are pending again. An order for
-- an unknown SKU is marked failed (retried with backoff, then dead: see inbox_dead).
-- Returns one row per message: what happened to the stock.
CREATE OR REPLACE FUNCTION public.inventory_process(n integer DEFAULT 100)
RETURNS TABLE (message_id text, order_id bigint, sku text, qty integer,
               before integer, after integer, outcome text)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    m record;
    ev jsonb;
BEGIN
    FOR m IN SELECT * FROM public.inbox_claim(n) LOOP
        message_id := m.message_id;
        ev := public.inbox_json(m.payload);
        order_id := (ev->>'order_id')::bigint;
        sku := ev->>'sku';
        qty := (ev->>'qty')::integer;
        UPDATE public.stock s SET on_hand = s.on_hand - inventory_process.qty
         WHERE s.sku = inventory_process.sku
        RETURNING s.on_hand + inventory_process.qty, s.on_hand INTO before, after;
        IF FOUND THEN
            INSERT INTO public.stock_changes (message_id, order_id, sku, qty, on_hand)
            VALUES (m.message_id, order_id, sku, qty, after);
            PERFORM public.inbox_complete(m.message_id);
            outcome := 'done';
        ELSE
            outcome := public.inbox_fail(m.message_id, format('unknown SKU %L', sku));
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
