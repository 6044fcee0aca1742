-- Up Migration

-- What changed, by whom, in which transaction: the log GET /changes reads (docs/sync.md).
-- A delete leaves its tombstone here (deleted = true), not in the resource's table, so no
-- other read and no uniqueness rule ever sees it. xid is the writing transaction's id:
-- with the reader's snapshot it tells which changes a cursor has already seen, whatever
-- order their transactions committed in. Rows older than SYNC_RETENTION_DAYS are deleted
-- by the service, in batches.
CREATE TABLE changes (
  seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  owner_id   integer NOT NULL,
  kind       text NOT NULL,
  item_id    integer NOT NULL,
  deleted    boolean NOT NULL,
  xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  changed_at timestamptz(3) NOT NULL DEFAULT now()
);
-- A sync reads one owner's changes from its cursor's oldest open transaction on. Expired
-- rows are found by seq, oldest first (no index of their own: one less on every write).
CREATE INDEX changes_owner_xid_idx ON changes (owner_id, xid);

-- One row per row written, once per statement (transition tables: a batch of creates is
-- one INSERT here). TG_ARGV[0] is the kind, as GET /changes names it.
CREATE FUNCTION record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER todos_changes_insert AFTER INSERT ON todos REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes('todo');
CREATE TRIGGER todos_changes_update AFTER UPDATE ON todos REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes('todo');
CREATE TRIGGER todos_changes_delete AFTER DELETE ON todos REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes('todo');
CREATE TRIGGER cats_changes_insert AFTER INSERT ON cats REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes('cat');
CREATE TRIGGER cats_changes_update AFTER UPDATE ON cats REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes('cat');
CREATE TRIGGER cats_changes_delete AFTER DELETE ON cats REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes('cat');
CREATE TRIGGER lists_changes_insert AFTER INSERT ON lists REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes('list');
CREATE TRIGGER lists_changes_update AFTER UPDATE ON lists REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes('list');
CREATE TRIGGER lists_changes_delete AFTER DELETE ON lists REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes('list');

-- Down Migration

DROP TRIGGER lists_changes_delete ON lists;
DROP TRIGGER lists_changes_update ON lists;
DROP TRIGGER lists_changes_insert ON lists;
DROP TRIGGER cats_changes_delete ON cats;
DROP TRIGGER cats_changes_update ON cats;
DROP TRIGGER cats_changes_insert ON cats;
DROP TRIGGER todos_changes_delete ON todos;
DROP TRIGGER todos_changes_update ON todos;
DROP TRIGGER todos_changes_insert ON todos;
DROP FUNCTION record_changes();
DROP TABLE changes;
