import cluster, { type Worker } from 'node:cluster'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { connectDatabase } from './db/connect.js'
import { runMigrations } from './db/migrate.js'

/** The message a worker stops on, as if signalled (plugins see one shutdown, never two). */
export const SHUTDOWN_MESSAGE = 'todos-api:shutdown'

/**
 * WEB_CONCURRENCY > 1: this process (the primary) resolves and waits for the database,
 * migrates and seeds once, then forks that many workers, each the ordinary server
 * (server.ts) with migration and seeding off; they share the port through node:cluster,
 * which hands each new connection to the next worker. A worker that dies is replaced.
 * SIGTERM or SIGINT reaches every worker once (each drains as a single process does);
 * the primary exits when they have, with the worst exit code among them.
 */
export async function runPrimary(config: Config, logger: Logger): Promise<void> {
  const database = await connectDatabase(config, {
    info: (message) => logger.info(message),
    retry: ({ attempt, delayMs, reason }) => logger.warn({ attempt, retryInMs: delayMs, reason }, 'database not ready yet')
  })
  let exitCode = 0
  try {
    if (config.MIGRATE_ON_START) {
      const applied = await runMigrations(database.migrationConnectionString, { logger: { info: (m) => logger.debug(m), warn: (m) => logger.warn(m) } })
      logger.info({ applied }, applied.length ? `applied ${applied.length} migration(s)` : 'schema is up to date')
    }
    if (config.SEED_ON_START !== 'false') {
      const { seedOnStart } = await import('./dev/seed.js')
      await seedOnStart(database.migrationConnectionString, config.SEED_ON_START, logger)
    }
  } catch (error) {
    logger.fatal(`startup failed: ${(error as Error).message}`)
    await database.release().catch(() => {})
    process.exit(1)
  }

  const env = {
    DATABASE_URL: database.connectionString,
    MIGRATION_DATABASE_URL: database.migrationConnectionString,
    MIGRATE_ON_START: 'false',
    SEED_ON_START: 'false'
  }
  let stopping = false
  const fork = () => cluster.fork(env)
  for (let i = 0; i < config.WEB_CONCURRENCY; i++) fork()
  logger.info(`started ${config.WEB_CONCURRENCY} workers (WEB_CONCURRENCY)`)

  const stopped = new Promise<void>((resolve) => {
    cluster.on('exit', (worker: Worker, code, signal) => {
      if (!stopping) {
        logger.error({ pid: worker.process.pid, code, signal }, 'worker died; starting another')
        fork()
        return
      }
      if (code !== 0) exitCode = code ?? 1
      if (Object.keys(cluster.workers ?? {}).length === 0) resolve()
    })
  })
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal: as for a single process, stop now.
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL')
      return
    }
    stopping = true
    logger.info({ signal }, 'shutting down workers')
    for (const worker of Object.values(cluster.workers ?? {})) worker?.send(SHUTDOWN_MESSAGE)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  await stopped
  await database.release().catch(() => {})
  logger.info('shutdown complete')
  process.exit(exitCode)
}
