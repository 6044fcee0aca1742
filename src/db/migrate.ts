import { runner } from 'node-pg-migrate'
import type pg from 'pg'
import type { Config } from '../config.js'
import { errorLine } from '../logger.js'
import { LOCKS, inLockedTransaction, withClient } from './client.js'
import { MIGRATIONS_DIR, MigrationError, migrationFiles, type MigrationFile } from './migration-files.js'
import { splitStatements } from './statements.js'
import { CHECKSUMS_TABLE, MIGRATIONS_TABLE, driftMessage, migrationStatus, recorded, resolveName } from './migration-status.js'

export { MIGRATIONS_DIR, MIGRATIONS_TABLE, MigrationError, migrationFiles }
export { createMigration } from './migration-files.js'

/** node-pg-migrate's own lock key: a runner of another version still queues behind ours. */
const MIGRATION_LOCK = 7_241_865_325_823_964

export interface MigrationLogger {
  info(message: string): void
  warn(message: string): void
}

/** The time limits of a run (MIGRATION_* settings), in milliseconds. */
export interface MigrationLimits {
  /** How long one statement may wait for a table lock before the run gives up and retries. */
  lockTimeoutMs: number
  /** How many times a run that met a busy table is retried (with doubling pauses). */
  lockRetries: number
  /** How long one statement may run. */
  statementTimeoutMs: number
  /** How long to wait for another instance's migration run (the advisory lock). */
  lockWaitMs: number
}

export const DEFAULT_LIMITS: MigrationLimits = { lockTimeoutMs: 5000, lockRetries: 4, statementTimeoutMs: 15 * 60_000, lockWaitMs: 120_000 }

/** The limits the MIGRATION_* settings ask for. */
export const migrationLimits = (config: Config): MigrationLimits => ({
  lockTimeoutMs: config.MIGRATION_LOCK_TIMEOUT_MS,
  lockRetries: config.MIGRATION_LOCK_RETRIES,
  statementTimeoutMs: config.MIGRATION_STATEMENT_TIMEOUT_MS,
  lockWaitMs: config.MIGRATION_LOCK_WAIT_SECONDS * 1000
})

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
    await client.query(`SET statement_timeout = ${Math.floor(limits.statementTimeoutMs)}`)
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
          await afterEach(await withLockRetries(client, limits, options.retryDelayMs ?? 1000, logger, () => apply(client, dir, direction, count, logger)))
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

/**
 * A database with tables of its own but no migration history cannot be migrated blindly
 * (the first migration would fail half-way, or worse, succeed next to what is there):
 * refused, unless `baseline` says which migration its schema corresponds to.
 */
async function checkBaseline(client: pg.Client, files: MigrationFile[], baseline: string | undefined, dryRun: boolean, logger: MigrationLogger) {
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

/** `run` again while it fails on a lock it could not get in time (55P03), pausing longer each time. */
async function withLockRetries<T>(client: pg.Client, limits: MigrationLimits, delayMs: number, logger: MigrationLogger, run: () => Promise<T>): Promise<T> {
  await client.query(`SET lock_timeout = ${Math.floor(limits.lockTimeoutMs)}`)
  for (let attempt = 0; ; attempt++) {
    try {
      return await run()
    } catch (error) {
      const busy = (error as { cause?: { code?: string } }).cause?.code === '55P03'
      if (!busy || attempt >= limits.lockRetries) {
        if (busy) throw new MigrationError(`${(error as Error).message} (a table stayed locked by other sessions through ${attempt + 1} attempts; find them in pg_stat_activity)`, { cause: error })
        throw error
      }
      const pause = delayMs * 2 ** attempt
      logger.warn(`a table the migration needs is busy (lock_timeout ${limits.lockTimeoutMs} ms); nothing was applied; retrying in ${pause} ms`)
      await new Promise((resolve) => setTimeout(resolve, pause))
    }
  }
}

/** node-pg-migrate's advisory lock, waited for up to `waitMs`; past that, an error naming who holds it. */
async function acquireLock(client: pg.Client, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs
  for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK])
    if (rows[0]?.locked) return
    if (Date.now() >= deadline) throw new MigrationError(`another migration run still holds the migration lock after ${Math.round(waitMs / 1000)} s: ${await lockHolder(client)}`)
    await new Promise((resolve) => setTimeout(resolve, pause))
  }
}

async function lockHolder(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ pid: number; application_name: string; client_addr: string | null; backend_start: Date; state: string; query: string }>(
    `SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start, a.state, left(a.query, 60) AS query
       FROM pg_locks l JOIN pg_stat_activity a USING (pid)
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1`,
    [Math.floor(MIGRATION_LOCK / 2 ** 32), MIGRATION_LOCK % 2 ** 32]
  )
  const holder = rows[0]
  if (!holder) return 'the holder has just let go; try again'
  return (
    `pid ${holder.pid} (${holder.application_name || 'no application_name'}${holder.client_addr ? ` from ${holder.client_addr}` : ''}, ` +
    `connected ${holder.backend_start.toISOString()}, ${holder.state}: ${holder.query}); if it is stuck, SELECT pg_terminate_backend(${holder.pid})`
  )
}

/** Names of the migrations in `dir` that the database has not applied yet. */
export async function pendingMigrations(client: pg.ClientBase | pg.Pool, dir = MIGRATIONS_DIR): Promise<string[]> {
  const history = await recorded(client)
  return (await migrationFiles(dir)).map((file) => file.name).filter((name) => !history.has(name))
}

function ensureChecksumsTable(client: pg.Client) {
  return inLockedTransaction(client, LOCKS.checksumsTable, () =>
    client.query(
      `CREATE TABLE IF NOT EXISTS ${CHECKSUMS_TABLE} (name text PRIMARY KEY, sha256 text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())`
    )
  )
}

async function recordChecksums(client: pg.ClientBase, files: MigrationFile[]) {
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

const silentLogger: MigrationLogger = { info: () => {}, warn: () => {} }

