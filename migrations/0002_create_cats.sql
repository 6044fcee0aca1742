-- Up Migration

CREATE TABLE cats (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200 AND name ~ '\S'),
  breed      text CHECK (char_length(breed) BETWEEN 1 AND 100 AND breed ~ '\S'),
  -- cents; integer keeps money exact
  price      integer NOT NULL CHECK (price >= 0),
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  updated_at timestamptz(3) NOT NULL DEFAULT now(),
  version    integer NOT NULL DEFAULT 1
);

CREATE TRIGGER cats_touch BEFORE UPDATE ON cats
  FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION touch_row();

CREATE INDEX cats_breed_idx ON cats (lower(breed), id);
CREATE INDEX cats_price_idx ON cats (price, id);
CREATE INDEX cats_name_idx ON cats (name, id);
CREATE INDEX cats_created_at_idx ON cats (created_at, id);
CREATE INDEX cats_name_trgm_idx ON cats USING gin (name gin_trgm_ops);

-- Down Migration

DROP TABLE cats;
