import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Migration, runner } from 'node-pg-migrate'
import type pg from 'pg'
import { errorLine } from '../logger.js'
import { LOCKS, inLockedTransaction, withClient } from './client.js'

/** `migrations/` at the project root, from `src/db` (tsx) and `dist/db` (compiled) alike. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url))
export const MIGRATIONS_TABLE = 'pgmigrations'
const CHECKSUMS_TABLE = 'pgmigrations_checksums'

export interface MigrationLogger {
  info(message: string): void
  warn(message: string): void
}

export interface RunMigrationsOptions {
  direction?: 'up' | 'down'
  /** How many to apply or revert; all pending for up, one for down by default. */
  count?: number
  logger?: MigrationLogger
  dir?: string
}

/** A migration run that failed; the database was left as it was before the run. */
export class MigrationError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'MigrationError'
  }
}

/**
 * Applies (or reverts) migrations with node-pg-migrate's programmatic runner.
 *
 * - Two instances starting together wait for each other on node-pg-migrate's advisory
 *   lock, so each migration runs once and both come up.
 * - All pending migrations run in one transaction: if any fails, none is applied, so the
 *   schema is always that of one release or the next, never half of one.
 * - Applied migrations are checksummed; editing one after it ran stops the run with an
 *   error instead of leaving databases that disagree about what "0001" means.
 *
 * Returns the names of the migrations it ran, in order.
 */
export async function runMigrations(connectionString: string, options: RunMigrationsOptions = {}): Promise<string[]> {
  const { direction = 'up', logger = silentLogger, dir = MIGRATIONS_DIR } = options
  const count = options.count ?? (direction === 'up' ? Number.POSITIVE_INFINITY : 1)
  return withClient(connectionString, async (client) => {
    await ensureChecksumsTable(client)
    const files = await migrationFiles(dir)
    await verifyChecksums(client, files)
    let current = ''
    const ran = await runner({
      dbClient: client,
      dir,
      direction,
      count,
      migrationsTable: MIGRATIONS_TABLE,
      singleTransaction: true,
      advisoryLockMode: 'wait',
      checkOrder: true,
      logger: {
        info: (message) => {
          current = /^### MIGRATION (\S+)/.exec(message)?.[1] ?? current
          logger.info(message)
        },
        warn: (message) => logger.warn(message),
        // node-pg-migrate reports a failed statement with its full SQL text; the error we
        // throw names the migration and the reason, and SQL text stays out of the logs.
        error: () => {}
      }
    }).catch((error: unknown) => {
      const which = current ? `migration ${current} failed` : 'migrating failed'
      throw new MigrationError(`${which}, nothing was applied: ${errorLine(error)}`, { cause: error })
    })
    const names = ran.map((migration) => migration.name)
    if (direction === 'up') await recordChecksums(client, files)
    else await client.query(`DELETE FROM ${CHECKSUMS_TABLE} WHERE name = ANY($1)`, [names])
    return names
  })
}

/** Names of the migrations in `dir` that the database has not applied yet. */
export async function pendingMigrations(client: pg.ClientBase | pg.Pool, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = await migrationFiles(dir)
  const applied = await appliedMigrations(client)
  return files.map((file) => file.name).filter((name) => !applied.has(name))
}

export async function appliedMigrations(client: pg.ClientBase | pg.Pool): Promise<Set<string>> {
  try {
    const { rows } = await client.query<{ name: string }>(`SELECT name FROM ${MIGRATIONS_TABLE}`)
    return new Set(rows.map((row) => row.name))
  } catch (error) {
    if ((error as { code?: string }).code === '42P01') return new Set() // never migrated
    throw error
  }
}

interface MigrationFile {
  name: string
  sha256: string
}

export async function migrationFiles(dir = MIGRATIONS_DIR): Promise<MigrationFile[]> {
  const names = (await readdir(dir)).filter((file) => /^\d+_.+\.sql$/.test(file)).sort()
  return Promise.all(
    names.map(async (file) => ({
      name: basename(file, '.sql'),
      sha256: createHash('sha256').update(await readFile(join(dir, file))).digest('hex')
    }))
  )
}

/** Creates `migrations/<next number>_<name>.sql` with both parts; returns its path. */
export async function createMigration(name: string, dir = MIGRATIONS_DIR): Promise<string> {
  if (!/^[a-z][a-z0-9_]*$/.test(name)) {
    throw new MigrationError('a migration name is lower-case letters, digits and underscores, starting with a letter (e.g. add_todo_tags)')
  }
  return Migration.create(name, dir, { filenameFormat: 'index', language: 'sql' })
}

function ensureChecksumsTable(client: pg.Client) {
  return inLockedTransaction(client, LOCKS.checksumsTable, () =>
    client.query(
      `CREATE TABLE IF NOT EXISTS ${CHECKSUMS_TABLE} (name text PRIMARY KEY, sha256 text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())`
    )
  )
}

async function verifyChecksums(client: pg.Client, files: MigrationFile[]) {
  const { rows } = await client.query<{ name: string; sha256: string }>(`SELECT name, sha256 FROM ${CHECKSUMS_TABLE}`)
  const current = new Map(files.map((file) => [file.name, file.sha256]))
  const changed = rows.filter((row) => current.has(row.name) && current.get(row.name) !== row.sha256).map((row) => row.name)
  if (changed.length > 0) {
    throw new MigrationError(
      `applied migration(s) ${changed.join(', ')} changed since they ran (checksum mismatch): ` +
        'restore the original file and put the change in a new migration'
    )
  }
}

async function recordChecksums(client: pg.Client, files: MigrationFile[]) {
  const applied = await appliedMigrations(client)
  const rows = files.filter((file) => applied.has(file.name))
  if (rows.length === 0) return
  await client.query(
    `INSERT INTO ${CHECKSUMS_TABLE} (name, sha256) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (name) DO NOTHING`,
    [rows.map((row) => row.name), rows.map((row) => row.sha256)]
  )
}

const silentLogger: MigrationLogger = { info: () => {}, warn: () => {} }
