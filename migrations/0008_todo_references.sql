-- todos-api: no-transaction
-- Up Migration

-- The indexes the new todo fields need, built without blocking writes, then the subtask
-- foreign key, NOT VALID (0009 validates it). Each statement commits alone; each can run
-- again.

-- A subtask's parent is its owner's own todo: the foreign key needs (owner_id, id) unique.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS todos_owner_id_id_key ON todos (owner_id, id);
-- ?list_id= and ?parent_id= in the default order (and the cascades of a list and a todo),
-- ?label= (GIN on the labels alone: no extension to install, and the planner combines it
-- with the owner's index), and sort=priority.
CREATE INDEX CONCURRENTLY IF NOT EXISTS todos_owner_list_order_idx ON todos (owner_id, list_id, (coalesce("order"::bigint, 2147483648)), id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS todos_owner_parent_idx ON todos (owner_id, parent_id, (coalesce("order"::bigint, 2147483648)), id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS todos_labels_idx ON todos USING gin (labels);
CREATE INDEX CONCURRENTLY IF NOT EXISTS todos_owner_priority_idx ON todos (owner_id, priority, id);

-- Deleting a todo deletes its subtasks, in the DELETE's own statement.
ALTER TABLE todos DROP CONSTRAINT IF EXISTS todos_parent_fk;
ALTER TABLE todos ADD CONSTRAINT todos_parent_fk FOREIGN KEY (owner_id, parent_id)
  REFERENCES todos (owner_id, id) ON DELETE CASCADE NOT VALID;

-- Down Migration

ALTER TABLE todos DROP CONSTRAINT IF EXISTS todos_parent_fk;
DROP INDEX CONCURRENTLY IF EXISTS todos_owner_priority_idx;
DROP INDEX CONCURRENTLY IF EXISTS todos_labels_idx;
DROP INDEX CONCURRENTLY IF EXISTS todos_owner_parent_idx;
DROP INDEX CONCURRENTLY IF EXISTS todos_owner_list_order_idx;
DROP INDEX CONCURRENTLY IF EXISTS todos_owner_id_id_key;
