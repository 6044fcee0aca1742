-- Up Migration

-- Accounts. Emails are unique whatever their case; a user created by `make user` has no
-- password until they set one. Exactly one user is built in: the local user, who owns
-- every row that existed before this migration and acts for requests without a token
-- when AUTH_MODE=local. It has no password, so nobody can sign in as it.
CREATE TABLE users (
  id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email         text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254 AND email ~ '^[^@\s]+@[^@\s]+$'),
  name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200 AND name ~ '\S'),
  password_hash text,
  builtin       boolean NOT NULL DEFAULT false,
  created_at    timestamptz(3) NOT NULL DEFAULT now(),
  updated_at    timestamptz(3) NOT NULL DEFAULT now(),
  version       integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_builtin_key ON users (builtin) WHERE builtin;
CREATE TRIGGER users_touch BEFORE UPDATE ON users
  FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION touch_row();

INSERT INTO users (email, name, builtin) VALUES ('local@todos-api.invalid', 'Local user', true);

-- API tokens: only the SHA-256 of a token is kept (tokens are 256 random bits, so a fast
-- hash is enough); `prefix` is its first characters, for people to tell tokens apart.
CREATE TABLE api_tokens (
  id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id      integer NOT NULL REFERENCES users ON DELETE CASCADE,
  name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
  token_hash   bytea NOT NULL CHECK (octet_length(token_hash) = 32),
  prefix       text NOT NULL,
  created_at   timestamptz(3) NOT NULL DEFAULT now(),
  last_used_at timestamptz(3),
  expires_at   timestamptz(3),
  revoked_at   timestamptz(3)
);
-- Every authenticated request looks its token up here, inside its own statement.
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash) INCLUDE (user_id, revoked_at, expires_at);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, id);

-- Every todo and cat belongs to a user. The rows already there go to the local user:
-- the column is added with the local user's id as a constant default (no table rewrite),
-- and the default is then dropped so every later row names its owner explicitly.
DO $$
DECLARE
  local_id integer := (SELECT id FROM users WHERE builtin);
BEGIN
  EXECUTE format('ALTER TABLE todos ADD COLUMN owner_id integer NOT NULL DEFAULT %s', local_id);
  EXECUTE format('ALTER TABLE cats ADD COLUMN owner_id integer NOT NULL DEFAULT %s', local_id);
END
$$;
ALTER TABLE todos ALTER COLUMN owner_id DROP DEFAULT;
ALTER TABLE cats ALTER COLUMN owner_id DROP DEFAULT;
ALTER TABLE todos ADD CONSTRAINT todos_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users ON DELETE CASCADE NOT VALID;
ALTER TABLE todos VALIDATE CONSTRAINT todos_owner_id_fkey;
ALTER TABLE cats ADD CONSTRAINT cats_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users ON DELETE CASCADE NOT VALID;
ALTER TABLE cats VALIDATE CONSTRAINT cats_owner_id_fkey;

-- Every list is one owner's: each sort index now starts with owner_id, so a page of any
-- sort, at any depth, stays an index range scan within the caller's rows
-- (test/keyset-plan.test.ts). They also serve the foreign keys' cascading deletes.
DROP INDEX todos_order_idx;
DROP INDEX todos_completed_order_idx;
DROP INDEX todos_created_at_idx;
DROP INDEX todos_due_date_idx;
DROP INDEX todos_due_date_sort_idx;
DROP INDEX todos_title_idx;
CREATE INDEX todos_owner_order_idx ON todos (owner_id, (coalesce("order"::bigint, 2147483648)), id);
CREATE INDEX todos_owner_completed_order_idx ON todos (owner_id, completed, (coalesce("order"::bigint, 2147483648)), id);
CREATE INDEX todos_owner_created_at_idx ON todos (owner_id, created_at, id);
CREATE INDEX todos_owner_due_date_idx ON todos (owner_id, due_date, id);
CREATE INDEX todos_owner_due_date_sort_idx ON todos (owner_id, (coalesce(due_date, 'infinity'::timestamptz)), id);
CREATE INDEX todos_owner_title_idx ON todos (owner_id, title, id);

DROP INDEX cats_breed_idx;
DROP INDEX cats_price_idx;
DROP INDEX cats_name_idx;
DROP INDEX cats_created_at_idx;
CREATE INDEX cats_owner_breed_idx ON cats (owner_id, lower(breed), id);
CREATE INDEX cats_owner_price_idx ON cats (owner_id, price, id);
CREATE INDEX cats_owner_name_idx ON cats (owner_id, name, id);
CREATE INDEX cats_owner_created_at_idx ON cats (owner_id, created_at, id);

-- Down Migration

-- Going back merges every user's rows into one shared table again, and forgets the users.
DROP INDEX cats_owner_breed_idx;
DROP INDEX cats_owner_price_idx;
DROP INDEX cats_owner_name_idx;
DROP INDEX cats_owner_created_at_idx;
CREATE INDEX cats_breed_idx ON cats (lower(breed), id);
CREATE INDEX cats_price_idx ON cats (price, id);
CREATE INDEX cats_name_idx ON cats (name, id);
CREATE INDEX cats_created_at_idx ON cats (created_at, id);

DROP INDEX todos_owner_order_idx;
DROP INDEX todos_owner_completed_order_idx;
DROP INDEX todos_owner_created_at_idx;
DROP INDEX todos_owner_due_date_idx;
DROP INDEX todos_owner_due_date_sort_idx;
DROP INDEX todos_owner_title_idx;
CREATE INDEX todos_order_idx ON todos ((coalesce("order"::bigint, 2147483648)), id);
CREATE INDEX todos_completed_order_idx ON todos (completed, (coalesce("order"::bigint, 2147483648)), id);
CREATE INDEX todos_created_at_idx ON todos (created_at, id);
CREATE INDEX todos_due_date_idx ON todos (due_date, id);
CREATE INDEX todos_due_date_sort_idx ON todos ((coalesce(due_date, 'infinity'::timestamptz)), id);
CREATE INDEX todos_title_idx ON todos (title, id);

ALTER TABLE cats DROP COLUMN owner_id;
ALTER TABLE todos DROP COLUMN owner_id;
DROP TABLE api_tokens;
DROP TABLE users;
