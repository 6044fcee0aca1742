-- Up Migration

-- Idempotency-Key (IETF httpapi draft; Stripe's semantics) for POST /todos and POST /cats.
-- A key is its owner's. `claim` is set when a request takes the key: the write and the
-- recording of its answer happen in one statement that locks this row and checks the
-- claim, so a write applies at most once even if a request that was given up on (a hung
-- database) commits late. status/headers/body are the first answer, replayed to retries.
CREATE TABLE idempotency_keys (
  owner_id    integer NOT NULL REFERENCES users ON DELETE CASCADE,
  key         text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
  fingerprint bytea NOT NULL,
  claim       uuid NOT NULL,
  locked_at   timestamptz(3),
  status      integer,
  headers     jsonb,
  body        text,
  created_at  timestamptz(3) NOT NULL DEFAULT now(),
  expires_at  timestamptz(3) NOT NULL,
  PRIMARY KEY (owner_id, key)
);
-- For reaping expired keys.
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- Down Migration

DROP TABLE idempotency_keys;
