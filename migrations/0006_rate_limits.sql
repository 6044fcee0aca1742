-- Up Migration

-- Rate-limit counters that every replica shares (src/auth/limits.ts): one row per bucket,
-- named by the SHA-256 of what it counts (an address, an email, a caller), counting hits
-- in a fixed window that ends at resets_at, on the database's clock. UNLOGGED: a counter
-- is not worth WAL on every sign-in attempt; after a crash of PostgreSQL (or a failover)
-- the counters start again from zero.
CREATE UNLOGGED TABLE rate_limits (
  bucket    bytea PRIMARY KEY CHECK (octet_length(bucket) = 32),
  hits      integer NOT NULL,
  resets_at timestamptz(3) NOT NULL
);
-- For removing expired counters in batches.
CREATE INDEX rate_limits_resets_at_idx ON rate_limits (resets_at);

-- Down Migration

DROP TABLE rate_limits;
