-- Up Migration

-- Keeps updated_at and the row version (the ETag) right for every change, whoever makes
-- it. An UPDATE that changes nothing leaves both alone, so an ETag only moves on a change.
CREATE FUNCTION touch_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  NEW.version := OLD.version + 1;
  RETURN NEW;
END
$$;

-- Case-insensitive substring search (?q=) on title and description.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Timestamps keep milliseconds, the precision of JSON dates, so that a value read back
-- is exactly the value stored and can serve as a pagination cursor.
CREATE TABLE todos (
  id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500 AND title ~ '\S'),
  description text CHECK (char_length(description) <= 10000),
  completed   boolean NOT NULL DEFAULT false,
  "order"     integer,
  due_date    timestamptz(3),
  created_at  timestamptz(3) NOT NULL DEFAULT now(),
  updated_at  timestamptz(3) NOT NULL DEFAULT now(),
  version     integer NOT NULL DEFAULT 1
);

CREATE TRIGGER todos_touch BEFORE UPDATE ON todos
  FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION touch_row();

-- One index per sort order, each ending in id (the keyset tie-breaker); the completed
-- filter combined with the default order gets its own.
CREATE INDEX todos_order_idx ON todos ("order", id);
CREATE INDEX todos_completed_order_idx ON todos (completed, "order", id);
CREATE INDEX todos_created_at_idx ON todos (created_at, id);
CREATE INDEX todos_due_date_idx ON todos (due_date, id);
CREATE INDEX todos_title_idx ON todos (title, id);
CREATE INDEX todos_title_trgm_idx ON todos USING gin (title gin_trgm_ops);
CREATE INDEX todos_description_trgm_idx ON todos USING gin (description gin_trgm_ops);

-- Down Migration

DROP TABLE todos;
DROP EXTENSION IF EXISTS pg_trgm;
DROP FUNCTION touch_row();
