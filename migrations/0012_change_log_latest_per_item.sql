-- Up Migration

-- The change log keeps one row per item: its latest change (docs/sync.md). A sync wants
-- each item once, in its latest state; with a row per change, every page of a window had
-- to group the whole window again to find each item's latest (N²/L rows read to page
-- through N changes). With one row per item, a window is a plain range of the index on
-- (owner_id, xid, kind, item_id), paged by keyset. A newer change replaces the item's row
-- in its own transaction, so a reader still sees the older change until the newer one
-- commits, and then sees it after its cursor. Tombstones stay rows like the others.
CREATE TABLE change_log (
  kind       text NOT NULL,
  item_id    integer NOT NULL,
  owner_id   integer NOT NULL,
  deleted    boolean NOT NULL,
  xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  changed_at timestamptz(3) NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, item_id)
);
INSERT INTO change_log (kind, item_id, owner_id, deleted, xid, changed_at)
  SELECT DISTINCT ON (kind, item_id) kind, item_id, owner_id, deleted, xid, changed_at FROM changes ORDER BY kind, item_id, seq DESC;
CREATE INDEX change_log_owner_xid_idx ON change_log (owner_id, xid, kind, item_id);
-- Only tombstones expire (the reaper); an item's own row lives as long as the item.
CREATE INDEX change_log_tombstones_idx ON change_log (changed_at) WHERE deleted;

CREATE OR REPLACE FUNCTION record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  owners integer[];
BEGIN
  IF TG_OP = 'DELETE' THEN
    WITH logged AS (
      INSERT INTO change_log AS l (kind, item_id, owner_id, deleted) SELECT TG_ARGV[0], id, owner_id, true FROM old_rows
      ON CONFLICT (kind, item_id) DO UPDATE SET deleted = true, xid = excluded.xid, changed_at = excluded.changed_at
      RETURNING l.owner_id
    )
    SELECT array_agg(DISTINCT owner_id) INTO owners FROM logged;
  ELSIF TG_OP = 'UPDATE' THEN
    -- A PATCH that sends the values already stored rewrites the row but changes nothing.
    WITH logged AS (
      INSERT INTO change_log AS l (kind, item_id, owner_id, deleted)
        SELECT TG_ARGV[0], n.id, n.owner_id, false FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE (o.*) IS DISTINCT FROM (n.*)
      ON CONFLICT (kind, item_id) DO UPDATE SET deleted = false, xid = excluded.xid, changed_at = excluded.changed_at
      RETURNING l.owner_id
    )
    SELECT array_agg(DISTINCT owner_id) INTO owners FROM logged;
  ELSE
    WITH logged AS (
      INSERT INTO change_log AS l (kind, item_id, owner_id, deleted) SELECT TG_ARGV[0], id, owner_id, false FROM new_rows
      ON CONFLICT (kind, item_id) DO UPDATE SET deleted = false, xid = excluded.xid, changed_at = excluded.changed_at
      RETURNING l.owner_id
    )
    SELECT array_agg(DISTINCT owner_id) INTO owners FROM logged;
  END IF;
  PERFORM pg_notify('changes', owner::text) FROM unnest(owners) owner;
  RETURN NULL;
END
$$;

-- Replaced by change_log. A replica of the previous release still running during a rolling
-- deploy answers its GET /changes with an error until it is replaced (nothing else reads it).
-- squawk-ignore ban-drop-table
DROP TABLE changes;

-- Down Migration

CREATE TABLE changes (
  seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  owner_id   integer NOT NULL,
  kind       text NOT NULL,
  item_id    integer NOT NULL,
  deleted    boolean NOT NULL,
  xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  changed_at timestamptz(3) NOT NULL DEFAULT now()
);
CREATE INDEX changes_owner_xid_idx ON changes (owner_id, xid);
INSERT INTO changes (owner_id, kind, item_id, deleted, xid, changed_at)
  SELECT owner_id, kind, item_id, deleted, xid, changed_at FROM change_log ORDER BY xid, kind, item_id;
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
DROP TABLE change_log;
