import { resolve } from 'node:path'
import type { Config } from './config.js'
import { migrationLimits, runMigrations } from './db/migrate.js'
import { describeTarget, waitForDatabase } from './db/wait.js'
import type { Logger } from './lib/logger.js'

/** Where the database is and how to let go of it when done. */
export interface DatabaseTarget {
  /** Where requests go: DATABASE_URL, possibly a pooler. */
  connectionString: string
  /**
   * A direct connection for what needs a session of its own (migrations and their
   * advisory lock, seeding, the command-line tools): MIGRATION_DATABASE_URL when set,
   * else the same as `connectionString`.
   */
  migrationConnectionString: string
  source: 'DATABASE_URL' | 'POSTGRES_*' | 'embedded'
  /** Lets go of the embedded server (stopping it if nobody else uses it); a no-op otherwise. */
  release(): Promise<void>
}

/**
 * Resolves the database the way the boot sequence describes: `DATABASE_URL`, else the
 * `POSTGRES_*` parts (the variable names the official postgres image uses), else, outside
 * production, an embedded PostgreSQL kept under `EMBEDDED_POSTGRES_DIR`. The embedded
 * server's code (src/dev/) is loaded only then, so production never loads it.
 */
export async function resolveDatabase(config: Config, log: (message: string) => void): Promise<DatabaseTarget> {
  const release = async () => {}
  const direct = (connectionString: string) => libpqSsl(config.MIGRATION_DATABASE_URL ?? connectionString)
  if (config.DATABASE_URL) return { connectionString: libpqSsl(config.DATABASE_URL), migrationConnectionString: direct(config.DATABASE_URL), source: 'DATABASE_URL', release }
  if (config.POSTGRES_HOST) {
    const url = new URL('postgres://localhost/')
    url.hostname = config.POSTGRES_HOST
    url.port = String(config.POSTGRES_PORT)
    url.username = encodeURIComponent(config.POSTGRES_USER ?? '')
    url.password = encodeURIComponent(config.POSTGRES_PASSWORD ?? '')
    url.pathname = `/${encodeURIComponent(config.POSTGRES_DB ?? '')}`
    return { connectionString: url.toString(), migrationConnectionString: direct(url.toString()), source: 'POSTGRES_*', release }
  }
  if (config.NODE_ENV === 'production') {
    // loadConfig already refuses this; kept so no code path can start one in production.
    throw new Error('no database configured: set DATABASE_URL')
  }
  const { startEmbeddedPostgres } = await import('./dev/embedded.js')
  const embedded = await startEmbeddedPostgres({
    dataDir: resolve(config.EMBEDDED_POSTGRES_DIR),
    port: config.EMBEDDED_POSTGRES_PORT,
    user: config.POSTGRES_USER ?? 'postgres',
    password: config.POSTGRES_PASSWORD ?? 'postgres',
    database: config.POSTGRES_DB ?? 'todos',
    log
  })
  return {
    connectionString: embedded.connectionString,
    migrationConnectionString: embedded.connectionString,
    source: 'embedded',
    release: () => embedded.release()
  }
}

/**
 * `sslmode` as libpq (psql, psycopg, every tutorial's remote database) means it:
 * `require` encrypts without checking the certificate, `verify-ca` / `verify-full` check
 * it against `sslrootcert` (a CA file). node-postgres alone treats `require` as
 * `verify-full`, so a managed database's `?sslmode=require` would fail on its
 * certificate; its `uselibpqcompat=true` switch restores libpq's meaning, and is added
 * here unless the URL already says.
 */
export function libpqSsl(connectionString: string): string {
  const url = new URL(connectionString)
  if (!url.searchParams.has('sslmode') || url.searchParams.has('uselibpqcompat')) return connectionString
  url.searchParams.set('uselibpqcompat', 'true')
  return url.toString()
}

/**
 * Resolves the database, says which one (never the password) and waits until it answers,
 * as the server and every command-line tool start. Lets go of an embedded server again if
 * the wait fails.
 */
export async function connectDatabase(
  config: Config,
  say: { info(message: string): void; retry(info: { attempt: number; delayMs: number; reason: string }): void },
  /** Command-line tools use the direct connection alone, and wait for nothing else. */
  { directOnly = false } = {}
): Promise<DatabaseTarget> {
  const target = await resolveDatabase(config, (message) => say.info(message))
  const separate = target.migrationConnectionString !== target.connectionString
  say.info(
    `using database ${describeTarget(target.connectionString)} (${target.source})` +
      (separate ? `, and ${describeTarget(target.migrationConnectionString)} directly for migrations (MIGRATION_DATABASE_URL)` : '')
  )
  try {
    const deadline = Date.now() + config.DATABASE_WAIT_SECONDS * 1000
    const needed = directOnly || !separate ? [target.migrationConnectionString] : [target.migrationConnectionString, target.connectionString]
    for (const connectionString of needed) {
      await waitForDatabase(connectionString, {
        deadlineMs: Math.max(0, deadline - Date.now()),
        connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
        onRetry: (info) => say.retry(info)
      })
    }
  } catch (error) {
    await target.release().catch(() => {})
    throw error
  }
  return target
}

/**
 * What every entry point does before it serves (boot.ts, and primary.ts for its
 * workers): resolve the database, wait for it, apply pending migrations
 * (MIGRATE_ON_START), and load demo data (SEED_ON_START). Returns where the database is;
 * `isStopping` lets a signal that arrives meanwhile skip what is left.
 */
export async function prepareDatabase(config: Config, logger: Logger, options: { quiet?: () => boolean; isStopping?: () => boolean; worker?: boolean } = {}): Promise<DatabaseTarget> {
  const { quiet = () => false, isStopping = () => false, worker = false } = options
  const database = await connectDatabase(config, {
    info: (message) => quiet() || logger.info(message),
    retry: ({ attempt, delayMs, reason }) => logger.warn({ attempt, retryInMs: delayMs, reason }, 'database not ready yet')
  })
  try {
    if (config.MIGRATE_ON_START && !isStopping()) {
      const applied = await runMigrations(database.migrationConnectionString, {
        limits: migrationLimits(config),
        logger: { info: (m) => logger.debug(m), warn: (m) => logger.warn(m) }
      })
      logger.info({ applied }, applied.length ? `applied ${applied.length} migration(s)` : 'schema is up to date')
    } else if (!config.MIGRATE_ON_START && !worker) {
      // (A worker of WEB_CONCURRENCY: the primary migrated.)
      logger.info('MIGRATE_ON_START=false: not migrating; /health/ready reports pending migrations')
    }
    if (config.SEED_ON_START !== 'false' && !isStopping()) {
      // Demo data is development code (src/dev/): loaded only when asked for.
      const { seedOnStart } = await import('./dev/seed.js')
      await seedOnStart(database.migrationConnectionString, config.SEED_ON_START, logger)
    }
  } catch (error) {
    await database.release().catch(() => {})
    throw error
  }
  return database
}
