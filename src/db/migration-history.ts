import type pg from 'pg'
import { LOCKS, inLockedTransaction } from './client.js'
import { MIGRATIONS_DIR, MigrationError, migrationFiles, type MigrationFile } from './migration-files.js'
import type { MigrationLogger } from './migration-lock.js'
import { CHECKSUMS_TABLE, MIGRATIONS_TABLE, recorded, resolveName } from './migration-status.js'

/** What the migration history tables hold, and the commands that change it without running a migration. */

/**
 * A database with tables of its own but no migration history cannot be migrated blindly
 * (the first migration would fail half-way, or worse, succeed next to what is there):
 * refused, unless `baseline` says which migration its schema corresponds to.
 */
export async function checkBaseline(client: pg.Client, files: MigrationFile[], baseline: string | undefined, dryRun: boolean, logger: MigrationLogger) {
  const history = await recorded(client)
  if (history.size > 0) {
    if (baseline) throw new MigrationError(`baseline=${baseline}: this database already has a migration history; a baseline is only for one that has none`)
    return
  }
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname = current_schema() AND c.relname NOT IN ($1, $2) ORDER BY 1`,
    [MIGRATIONS_TABLE, CHECKSUMS_TABLE]
  )
  if (!baseline) {
    if (rows.length === 0) return
    const tables = rows.map((row) => row.name)
    throw new MigrationError(
      `the database has tables (${tables.slice(0, 5).join(', ')}${tables.length > 5 ? ', ...' : ''}) but no migration history, so which migrations made ` +
        `them is unknown: if its schema is what migrations up to one of ours make, say which (make migrate baseline=${files.at(-1)?.name.split('_')[0] ?? '0001'}, ` +
        'or MIGRATE_ON_START=false and run that first); otherwise point DATABASE_URL at an empty database'
    )
  }
  const last = resolveName(baseline, files.map((file) => file.name))
  const covered = files.filter((file) => file.name <= last)
  logger.warn(`baseline: recording ${covered.map((file) => file.name).join(', ')} as applied without running them`)
  if (dryRun) return
  await client.query('BEGIN')
  await client.query(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL)`)
  await client.query(`INSERT INTO ${MIGRATIONS_TABLE} (name, run_on) SELECT unnest($1::text[]), now()`, [covered.map((file) => file.name)])
  await client.query(`INSERT INTO ${CHECKSUMS_TABLE} (name, sha256) SELECT * FROM unnest($1::text[], $2::text[])`, [covered.map((file) => file.name), covered.map((file) => file.sha256)])
  await client.query('COMMIT')
}

/** Names of the migrations in `dir` that the database has not applied yet. */
export async function pendingMigrations(client: pg.ClientBase | pg.Pool, dir = MIGRATIONS_DIR): Promise<string[]> {
  const history = await recorded(client)
  return (await migrationFiles(dir)).map((file) => file.name).filter((name) => !history.has(name))
}

export function ensureChecksumsTable(client: pg.Client) {
  return inLockedTransaction(client, LOCKS.checksumsTable, () =>
    client.query(
      `CREATE TABLE IF NOT EXISTS ${CHECKSUMS_TABLE} (name text PRIMARY KEY, sha256 text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())`
    )
  )
}

export async function recordChecksums(client: pg.ClientBase, files: MigrationFile[]) {
  const history = await recorded(client)
  const rows = files.filter((file) => history.has(file.name))
  if (rows.length === 0) return
  await client.query(
    `INSERT INTO ${CHECKSUMS_TABLE} (name, sha256) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (name) DO NOTHING`,
    [rows.map((row) => row.name), rows.map((row) => row.sha256)]
  )
}

/** `migrate accept`: the database matches `name`'s file as it is now; record that checksum. */
export async function acceptMigration(client: pg.ClientBase, file: MigrationFile): Promise<void> {
  await client.query(
    `INSERT INTO ${CHECKSUMS_TABLE} (name, sha256) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, recorded_at = now()`,
    [file.name, file.sha256]
  )
}

/** `migrate forget`: `name` (whose file is gone) is no longer recorded as applied. */
export async function forgetMigration(client: pg.ClientBase, name: string): Promise<void> {
  await client.query('BEGIN')
  await client.query(`DELETE FROM ${MIGRATIONS_TABLE} WHERE name = $1`, [name])
  await client.query(`DELETE FROM ${CHECKSUMS_TABLE} WHERE name = $1`, [name])
  await client.query('COMMIT')
}

