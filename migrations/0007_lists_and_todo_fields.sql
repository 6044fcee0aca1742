-- Up Migration

-- Expand step of lists, subtasks, labels, priority, completion time and metadata
-- (docs/migrations.md, "Zero-downtime changes"). Everything here is instant on a live
-- todos table: a new table, columns with constant defaults (no rewrite), constraints
-- NOT VALID (validated by 0009, which scans without blocking writes) and triggers. The
-- release before this one keeps working on the new schema: its INSERTs name none of the
-- new columns and get their defaults.

-- A user's lists. (owner_id, id) is unique so that a todo's list can be required to be
-- its owner's own by a foreign key: another user's list id is then refused exactly like
-- an id that does not exist.
CREATE TABLE lists (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  owner_id   integer NOT NULL REFERENCES users ON DELETE CASCADE,
  title      text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200 AND title ~ '\S'),
  colour     text NOT NULL DEFAULT 'grey'
             CHECK (colour IN ('grey', 'red', 'orange', 'yellow', 'green', 'teal', 'blue', 'purple', 'pink')),
  archived   boolean NOT NULL DEFAULT false,
  "position" integer,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version    integer NOT NULL DEFAULT 1,
  CONSTRAINT lists_owner_id_id_key UNIQUE (owner_id, id)
);

CREATE TRIGGER lists_touch BEFORE UPDATE ON lists
  FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION touch_row();

-- The sort indexes, each led by the owner and ended by id (the keyset tie-breaker).
CREATE INDEX lists_owner_position_idx ON lists (owner_id, (coalesce("position"::bigint, 2147483648)), id);
CREATE INDEX lists_owner_archived_position_idx ON lists (owner_id, archived, (coalesce("position"::bigint, 2147483648)), id);
CREATE INDEX lists_owner_title_idx ON lists (owner_id, title, id);
CREATE INDEX lists_owner_created_at_idx ON lists (owner_id, created_at, id);

ALTER TABLE todos ADD COLUMN list_id integer;
ALTER TABLE todos ADD COLUMN parent_id integer;
ALTER TABLE todos ADD COLUMN labels text[] NOT NULL DEFAULT '{}';
ALTER TABLE todos ADD COLUMN priority integer NOT NULL DEFAULT 1;
ALTER TABLE todos ADD COLUMN completed_at timestamptz(3);
ALTER TABLE todos ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';

-- Labels: at most 20, each 1 to 60 characters and not blank (the API trims them and
-- removes duplicates before they get here). A function, as a CHECK cannot hold a subquery.
CREATE FUNCTION todo_labels_valid(labels text[]) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN cardinality(labels) <= 20
    AND NOT EXISTS (SELECT FROM unnest(labels) AS l WHERE l IS NULL OR char_length(l) NOT BETWEEN 1 AND 60 OR l !~ '\S');

-- Metadata: a JSON object of at most 50 keys. The API limits its serialised size to 8 KiB;
-- jsonb's own text spaces it out, so the database's bound is twice that.
-- 8 KiB as the API returns it (jsonb's text), whatever merges made it.
CREATE FUNCTION todo_metadata_valid(metadata jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN jsonb_typeof(metadata) = 'object'
    AND octet_length(metadata::text) <= 8192
    AND (SELECT count(*) FROM jsonb_object_keys(metadata)) <= 50;

-- RFC 7396 for a jsonb value: what a PATCH does to a JSON column (the API bounds a
-- patch's depth, so the recursion is shallow). Members set to null are removed.
CREATE FUNCTION jsonb_merge_patch(target jsonb, patch jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  IF jsonb_typeof(patch) IS DISTINCT FROM 'object' THEN
    RETURN patch;
  END IF;
  IF jsonb_typeof(target) IS DISTINCT FROM 'object' THEN
    target := '{}';
  END IF;
  RETURN coalesce((
    SELECT jsonb_object_agg(key, CASE WHEN p.value IS NULL THEN t.value ELSE jsonb_merge_patch(t.value, p.value) END)
      FROM jsonb_each(target) t FULL JOIN jsonb_each(patch) p USING (key)
     WHERE p.value IS NULL OR p.value <> 'null'::jsonb
  ), '{}');
END
$$;

ALTER TABLE todos ADD CONSTRAINT todos_priority_check CHECK (priority BETWEEN 1 AND 4) NOT VALID;
ALTER TABLE todos ADD CONSTRAINT todos_labels_check CHECK (todo_labels_valid(labels)) NOT VALID;
ALTER TABLE todos ADD CONSTRAINT todos_metadata_check CHECK (todo_metadata_valid(metadata)) NOT VALID;
-- A todo's list is its owner's (MATCH SIMPLE: no list, the inbox, is not checked).
-- Deleting a list deletes its todos, in the DELETE's own statement.
ALTER TABLE todos ADD CONSTRAINT todos_list_fk FOREIGN KEY (owner_id, list_id)
  REFERENCES lists (owner_id, id) ON DELETE CASCADE NOT VALID;

-- completed_at is the database's: set when completed becomes true, cleared when it becomes
-- false, kept otherwise, whatever a statement writes. Todos completed before this
-- migration keep NULL: when they were completed is not known.
CREATE FUNCTION todos_completed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT NEW.completed THEN
    NEW.completed_at := NULL;
  ELSIF TG_OP = 'INSERT' OR NOT OLD.completed THEN
    NEW.completed_at := now();
  ELSE
    NEW.completed_at := OLD.completed_at;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER todos_completed_at_insert BEFORE INSERT ON todos
  FOR EACH ROW WHEN (NEW.completed OR NEW.completed_at IS NOT NULL) EXECUTE FUNCTION todos_completed_at();
CREATE TRIGGER todos_completed_at_update BEFORE UPDATE ON todos
  FOR EACH ROW WHEN (NEW.completed IS DISTINCT FROM OLD.completed OR NEW.completed_at IS DISTINCT FROM OLD.completed_at)
  EXECUTE FUNCTION todos_completed_at();

-- Labels are stored once each, in the order first given.
CREATE FUNCTION todos_distinct_labels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.labels := ARRAY(SELECT l FROM unnest(NEW.labels) WITH ORDINALITY AS u(l, n) GROUP BY l ORDER BY min(n));
  RETURN NEW;
END
$$;
CREATE TRIGGER todos_distinct_labels BEFORE INSERT OR UPDATE OF labels ON todos
  FOR EACH ROW WHEN (cardinality(NEW.labels) > 1) EXECUTE FUNCTION todos_distinct_labels();

-- A subtask: its parent is a todo of the same owner (the foreign key of 0008), in the
-- same list, at most 4 levels below a top-level todo, and never its own ancestor. The
-- owner's trees change one statement at a time (an advisory lock until commit), so two
-- moves at once cannot make a cycle that neither saw. A subtask created without a list
-- takes its parent's; one whose parent changes follows it into the parent's list.
CREATE FUNCTION todos_check_parent() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  parent_list integer;
  depth_above integer;
  depth_below integer := 0;
  cycle boolean;
BEGIN
  PERFORM pg_advisory_xact_lock(2026120201, NEW.owner_id);
  -- A top-level todo changing lists only takes the lock: a subtask created under it
  -- meanwhile then sees the list it moved to, or is moved along with it.
  IF NEW.parent_id IS NULL THEN
    RETURN NEW;
  END IF;
  -- (On INSERT, NEW.id is the next identity value: a parent of that id does not exist yet.)
  IF TG_OP = 'UPDATE' AND NEW.parent_id = NEW.id THEN
    RAISE EXCEPTION 'a todo cannot be its own subtask' USING ERRCODE = '23514', CONSTRAINT = 'todos_parent_cycle';
  END IF;
  SELECT list_id INTO parent_list FROM todos WHERE owner_id = NEW.owner_id AND id = NEW.parent_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no such parent todo' USING ERRCODE = '23503', CONSTRAINT = 'todos_parent_fk';
  END IF;
  IF NEW.list_id IS DISTINCT FROM parent_list THEN
    IF (TG_OP = 'INSERT' AND NEW.list_id IS NULL)
       OR (TG_OP = 'UPDATE' AND NEW.list_id IS NOT DISTINCT FROM OLD.list_id) THEN
      NEW.list_id := parent_list;
    ELSE
      RAISE EXCEPTION 'a subtask is in its parent''s list' USING ERRCODE = '23514', CONSTRAINT = 'todos_parent_list';
    END IF;
  END IF;
  WITH RECURSIVE up (id, parent_id, depth) AS (
    SELECT id, parent_id, 1 FROM todos WHERE owner_id = NEW.owner_id AND id = NEW.parent_id
    UNION ALL
    SELECT t.id, t.parent_id, up.depth + 1 FROM up JOIN todos t ON t.owner_id = NEW.owner_id AND t.id = up.parent_id
    WHERE up.depth < 6
  )
  SELECT max(depth), coalesce(bool_or(id = NEW.id), false) INTO depth_above, cycle FROM up;
  IF cycle THEN
    RAISE EXCEPTION 'a todo cannot be below its own subtask' USING ERRCODE = '23514', CONSTRAINT = 'todos_parent_cycle';
  END IF;
  IF TG_OP = 'UPDATE' THEN
    WITH RECURSIVE down (id, depth) AS (
      SELECT id, 1 FROM todos WHERE owner_id = NEW.owner_id AND parent_id = NEW.id
      UNION ALL
      SELECT t.id, down.depth + 1 FROM down JOIN todos t ON t.owner_id = NEW.owner_id AND t.parent_id = down.id
      WHERE down.depth < 6
    )
    SELECT coalesce(max(depth), 0) INTO depth_below FROM down;
  END IF;
  IF depth_above + depth_below > 4 THEN
    RAISE EXCEPTION 'subtasks nest at most 4 levels below a top-level todo' USING ERRCODE = '23514', CONSTRAINT = 'todos_parent_depth';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER todos_check_parent BEFORE INSERT ON todos
  FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL) EXECUTE FUNCTION todos_check_parent();
CREATE TRIGGER todos_check_parent_update BEFORE UPDATE OF parent_id, list_id ON todos
  FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL OR NEW.list_id IS DISTINCT FROM OLD.list_id) EXECUTE FUNCTION todos_check_parent();

-- A todo moved to another list takes its subtasks along (each of theirs fires this again),
-- whether the request named list_id or its new parent's list came with it: not `OF
-- list_id`, which would miss a list the BEFORE trigger set.
CREATE FUNCTION todos_move_subtasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE todos SET list_id = NEW.list_id
    WHERE owner_id = NEW.owner_id AND parent_id = NEW.id AND list_id IS DISTINCT FROM NEW.list_id;
  RETURN NULL;
END
$$;
CREATE TRIGGER todos_move_subtasks AFTER UPDATE ON todos
  FOR EACH ROW WHEN (OLD.list_id IS DISTINCT FROM NEW.list_id) EXECUTE FUNCTION todos_move_subtasks();

-- Down Migration

DROP TRIGGER todos_move_subtasks ON todos;
DROP FUNCTION todos_move_subtasks();
DROP TRIGGER todos_check_parent_update ON todos;
DROP TRIGGER todos_check_parent ON todos;
DROP FUNCTION todos_check_parent();
DROP TRIGGER todos_distinct_labels ON todos;
DROP FUNCTION todos_distinct_labels();
DROP TRIGGER todos_completed_at_update ON todos;
DROP TRIGGER todos_completed_at_insert ON todos;
DROP FUNCTION todos_completed_at();
ALTER TABLE todos DROP CONSTRAINT todos_list_fk;
ALTER TABLE todos DROP CONSTRAINT todos_metadata_check;
ALTER TABLE todos DROP CONSTRAINT todos_labels_check;
ALTER TABLE todos DROP CONSTRAINT todos_priority_check;
DROP FUNCTION todo_metadata_valid(jsonb);
DROP FUNCTION jsonb_merge_patch(jsonb, jsonb);
DROP FUNCTION todo_labels_valid(text[]);
ALTER TABLE todos DROP COLUMN metadata;
ALTER TABLE todos DROP COLUMN completed_at;
ALTER TABLE todos DROP COLUMN priority;
ALTER TABLE todos DROP COLUMN labels;
ALTER TABLE todos DROP COLUMN parent_id;
ALTER TABLE todos DROP COLUMN list_id;
DROP TABLE lists;
