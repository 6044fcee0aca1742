import { runner } from 'node-pg-migrate'
import type pg from 'pg'
import { errorLine } from '../lib/logger.js'
import { withClient } from './client.js'
import { MIGRATIONS_DIR, MigrationError, migrationFiles, type MigrationFile } from './migration-files.js'
import { splitStatements } from './statements.js'
import { checkBaseline, ensureChecksumsTable, recordChecksums } from './migration-history.js'
import { DEFAULT_LIMITS, MIGRATION_LOCK, acquireLock, withLockRetries, type MigrationLimits, type MigrationLogger } from './migration-lock.js'
import { CHECKSUMS_TABLE, MIGRATIONS_TABLE, driftMessage, migrationStatus } from './migration-status.js'

export { MIGRATIONS_DIR, MIGRATIONS_TABLE, MigrationError, migrationFiles }
export { createMigration } from './migration-files.js'
export { acceptMigration, forgetMigration, pendingMigrations } from './migration-history.js'
export { DEFAULT_LIMITS, migrationLimits, type MigrationLimits, type MigrationLogger } from './migration-lock.js'

export interface RunMigrationsOptions {
  direction?: 'up' | 'down'
  /** How many to apply or revert; all pending for up, one for down by default. */
  count?: number
  logger?: MigrationLogger
  dir?: string
  /** Print nothing, change nothing: return the migrations that would run (`sql` for their SQL). */
  dryRun?: boolean
  limits?: Partial<MigrationLimits>
  /** Pauses between retries (tests shorten them). */
  retryDelayMs?: number
  /**
   * For a database whose tables were made before it had a migration history (by hand,
   * by another tool): record the migrations up to this one as applied without running
   * them, then apply the rest. Without it, such a database is refused.
   */
  baseline?: string
}

export interface MigrationRun {
  names: string[]
  /** With dryRun: the SQL that would run, in order. */
  sql: string[]
}

/**
 * Applies (or reverts) migrations with node-pg-migrate's programmatic runner.
 *
 * - Two instances starting together queue on one advisory lock, so each migration runs
 *   once; the wait is bounded (lockWaitMs), and the error names who holds the lock.
 * - All pending migrations run in one transaction: if any fails, none is applied, so the
 *   schema is always that of one release or the next, never half of one.
 * - Every statement gets a lock_timeout: a migration that cannot get its table lock gives
 *   up instead of queueing every query on that table behind it, and the run is retried
 *   a few times with growing pauses. A statement_timeout bounds each statement.
 * - Applied migrations are checksummed; a changed or missing file stops the run with the
 *   file's name and the way out (migration-status.ts).
 * - A file with no SQL under `-- Up Migration` yet is not applied, nor any after it.
 *
 * Returns the names of the migrations it ran, in order.
 */
export async function runMigrations(connectionString: string, options: RunMigrationsOptions = {}): Promise<string[]> {
  return (await migrate(connectionString, options)).names
}

export async function migrate(connectionString: string, options: RunMigrationsOptions = {}): Promise<MigrationRun> {
  const { direction = 'up', logger = silentLogger, dir = MIGRATIONS_DIR, dryRun = false } = options
  const limits = { ...DEFAULT_LIMITS, ...options.limits }
  return withClient(connectionString, async (client) => {
    // Session settings: this is the direct connection, never a pooler's. They hold for
    // every statement of the run, in transactions and outside them (no-transaction files).
    await client.query(`SET statement_timeout = ${Math.floor(limits.statementTimeoutMs)}`)
    await client.query(`SET lock_timeout = ${Math.floor(limits.lockTimeoutMs)}`)
    await acquireLock(client, limits.lockWaitMs)
    try {
      await ensureChecksumsTable(client)
      const files = await migrationFiles(dir)
      if (direction === 'up') await checkBaseline(client, files, options.baseline, dryRun, logger)
      const entries = await migrationStatus(client, files)
      const drift = driftMessage(entries, { tolerateAhead: direction === 'up' })
      if (drift) throw new MigrationError(drift)
      const toRun = direction === 'up' ? upTo(files, entries, options.count, logger) : downFrom(files, entries, options.count ?? 1)
      if (dryRun || toRun.length === 0) return { names: toRun.map((file) => file.name), sql: toRun.map((file) => (direction === 'up' ? file.up : (file.down ?? ''))) }
      const names: string[] = []
      const afterEach = async (ran: string[]) => {
        names.push(...ran)
        if (direction === 'up') await recordChecksums(client, files)
        else await client.query(`DELETE FROM ${CHECKSUMS_TABLE} WHERE name = ANY($1)`, [ran])
      }
      try {
        // Runs of transactional files go through node-pg-migrate, each run in one
        // transaction; a `no-transaction` file runs alone between them.
        for (let i = 0; i < toRun.length; ) {
          const file = toRun[i] as MigrationFile
          if (!file.transaction) {
            await runAlone(client, file, direction)
            await afterEach([file.name])
            i++
            continue
          }
          let end = i
          while (end < toRun.length && toRun[end]?.transaction) end++
          const count = end - i
          await afterEach(await withLockRetries(limits, options.retryDelayMs ?? 1000, logger, () => apply(client, dir, direction, count, logger)))
          i = end
        }
      } catch (error) {
        if (names.length === 0 || !(error instanceof MigrationError)) throw error
        throw new MigrationError(`${error.message} (${names.join(', ')}, before it, ${direction === 'up' ? 'stay applied' : 'stay reverted'})`, { cause: error.cause })
      }
      return { names, sql: [] }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {})
    }
  })
}

/** The pending files to apply, in order, stopping at the first one without SQL. */
function upTo(files: MigrationFile[], entries: Awaited<ReturnType<typeof migrationStatus>>, count = Number.POSITIVE_INFINITY, logger: MigrationLogger) {
  const pending = new Set(entries.filter((entry) => entry.state === 'pending').map((entry) => entry.name))
  const toRun: MigrationFile[] = []
  for (const file of files) {
    if (!pending.has(file.name) || toRun.length >= count) continue
    if (file.empty) {
      logger.warn(`${file.name} has no SQL under "-- Up Migration" yet: not applied, nor anything after it`)
      break
    }
    toRun.push(file)
  }
  return toRun
}

function downFrom(files: MigrationFile[], entries: Awaited<ReturnType<typeof migrationStatus>>, count: number) {
  const applied = new Set(entries.filter((entry) => entry.state === 'applied').map((entry) => entry.name))
  return files.filter((file) => applied.has(file.name)).reverse().slice(0, count)
}

async function apply(client: pg.Client, dir: string, direction: 'up' | 'down', count: number, logger: MigrationLogger): Promise<string[]> {
  let current = ''
  const ran = await runner({
    dbClient: client,
    dir,
    direction,
    count,
    migrationsTable: MIGRATIONS_TABLE,
    singleTransaction: true,
    noLock: true,
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
  return ran.map((migration) => migration.name)
}

/**
 * A `-- todos-api: no-transaction` file (CREATE INDEX CONCURRENTLY, ALTER TYPE ... ADD
 * VALUE): its statements one by one, each committing on its own, and the migration
 * recorded only once all of them succeeded. A failure leaves the statements before it
 * done (so such files are written to run twice: IF NOT EXISTS), and names any index a
 * failed concurrent build left INVALID.
 */
async function runAlone(client: pg.Client, file: MigrationFile, direction: 'up' | 'down'): Promise<void> {
  const statements = splitStatements(direction === 'up' ? file.up : (file.down ?? ''))
  for (const [index, statement] of statements.entries()) {
    try {
      await client.query(statement)
    } catch (error) {
      const invalid = await invalidIndexes(client)
      throw new MigrationError(
        `migration ${file.name} (${direction}, outside a transaction) failed at statement ${index + 1} of ${statements.length}, ` +
          `and is not recorded as ${direction === 'up' ? 'applied' : 'reverted'}: ${errorLine(error)}` +
          (index > 0 ? '; the statements before it stay done' : '') +
          (invalid.length > 0
            ? `; the failed concurrent build left index(es) ${invalid.join(', ')} INVALID (unused, but still written to): ` +
              `DROP INDEX CONCURRENTLY ${invalid[0]}; then fix the cause and run make migrate again`
            : ''),
        { cause: error }
      )
    }
  }
  // An INVALID index an earlier failed build left satisfies IF NOT EXISTS: not done, then.
  const invalid = direction === 'up' ? await invalidIndexes(client) : []
  if (invalid.length > 0) {
    throw new MigrationError(
      `migration ${file.name} (up, outside a transaction) ran, but is not recorded as applied: index(es) ${invalid.join(', ')} are INVALID ` +
        `(a concurrent build failed before, and IF NOT EXISTS kept it): DROP INDEX CONCURRENTLY ${invalid[0]}; then make migrate again`
    )
  }
  if (direction === 'up') {
    await client.query(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL)`)
    await client.query(`INSERT INTO ${MIGRATIONS_TABLE} (name, run_on) VALUES ($1, now())`, [file.name])
  } else {
    await client.query(`DELETE FROM ${MIGRATIONS_TABLE} WHERE name = $1`, [file.name])
  }
}

/** Indexes a failed CREATE INDEX CONCURRENTLY left behind, marked invalid. */
export async function invalidIndexes(client: pg.ClientBase): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT i.indisvalid AND n.nspname = current_schema() ORDER BY 1`
  )
  return rows.map((row) => row.name)
}

const silentLogger: MigrationLogger = { info: () => {}, warn: () => {} }

