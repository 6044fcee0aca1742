-- Up Migration

-- GET /events (docs/sync.md): every write to the change log also tells the instances that
-- hold event streams which owners it touched, as a NOTIFY on the channel `changes` whose
-- payload is an owner id. PostgreSQL delivers it at commit, so an instance never looks for
-- a change before it is visible; the same owner twice in one transaction is one notification.
CREATE OR REPLACE FUNCTION record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  owners integer[];
BEGIN
  IF TG_OP = 'DELETE' THEN
    WITH logged AS (INSERT INTO changes (owner_id, kind, item_id, deleted) SELECT owner_id, TG_ARGV[0], id, true FROM old_rows RETURNING owner_id)
    SELECT array_agg(DISTINCT owner_id) INTO owners FROM logged;
  ELSIF TG_OP = 'UPDATE' THEN
    -- A PATCH that sends the values already stored rewrites the row but changes nothing.
    WITH logged AS (
      INSERT INTO changes (owner_id, kind, item_id, deleted)
        SELECT n.owner_id, TG_ARGV[0], n.id, false FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE (o.*) IS DISTINCT FROM (n.*)
        RETURNING owner_id
    )
    SELECT array_agg(DISTINCT owner_id) INTO owners FROM logged;
  ELSE
    WITH logged AS (INSERT INTO changes (owner_id, kind, item_id, deleted) SELECT owner_id, TG_ARGV[0], id, false FROM new_rows RETURNING owner_id)
    SELECT array_agg(DISTINCT owner_id) INTO owners FROM logged;
  END IF;
  PERFORM pg_notify('changes', owner::text) FROM unnest(owners) owner;
  RETURN NULL;
END
$$;

-- Single-use tickets for GET /events, which a browser's EventSource opens without an
-- Authorization header: POST /events/tickets makes one for the caller (their token, or the
-- local user), valid for a minute; GET /events?ticket= deletes it as it uses it. Only the
-- SHA-256 of a ticket is stored. UNLOGGED: a ticket lost in a crash is asked for again.
CREATE UNLOGGED TABLE event_tickets (
  ticket_hash bytea PRIMARY KEY CHECK (octet_length(ticket_hash) = 32),
  user_id     integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_id    integer REFERENCES api_tokens (id) ON DELETE CASCADE,
  expires_at  timestamptz(3) NOT NULL
);
-- For removing expired tickets in batches, and for the foreign keys' deletes.
CREATE INDEX event_tickets_expires_at_idx ON event_tickets (expires_at);
CREATE INDEX event_tickets_user_id_idx ON event_tickets (user_id);
CREATE INDEX event_tickets_token_id_idx ON event_tickets (token_id);

-- Down Migration

DROP TABLE event_tickets;
CREATE OR REPLACE FUNCTION record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO changes (owner_id, kind, item_id, deleted) SELECT owner_id, TG_ARGV[0], id, true FROM old_rows;
  ELSIF TG_OP = 'UPDATE' THEN
    -- A PATCH that sends the values already stored rewrites the row but changes nothing.
    INSERT INTO changes (owner_id, kind, item_id, deleted)
      SELECT n.owner_id, TG_ARGV[0], n.id, false FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE (o.*) IS DISTINCT FROM (n.*);
  ELSE
    INSERT INTO changes (owner_id, kind, item_id, deleted) SELECT owner_id, TG_ARGV[0], id, false FROM new_rows;
  END IF;
  RETURN NULL;
END
$$;
