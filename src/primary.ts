import cluster, { type Worker } from 'node:cluster'
import type { Config } from './config.js'
import type { DatabaseTarget } from './prepare-database.js'
import { prepareDatabase } from './prepare-database.js'
import type { Logger } from './lib/logger.js'
import { clusterMetrics, serveMetrics } from './metrics-server.js'

/** More deaths than this within DEATH_WINDOW_MS: something is wrong beyond one worker. */
const MAX_DEATHS = 5
const DEATH_WINDOW_MS = 60_000

/**
 * WEB_CONCURRENCY > 1: this process (the primary) resolves and waits for the database,
 * migrates and seeds once, then forks that many workers, each the ordinary server
 * (server.ts) with migration and seeding off; they share the port through node:cluster,
 * which hands each new connection to the next worker.
 *
 * - A worker that dies after it listened is replaced; one that dies before (a port in
 *   use, a bad setting), or too many deaths in a minute, stop everything with exit 1.
 * - SIGTERM or SIGINT: each worker gets SIGTERM and drains as a single process does;
 *   workers ignore SIGINT, so a Ctrl-C that reaches the whole process group counts once.
 *   The primary exits when they have, with the worst exit code among them. A second
 *   signal (not npm's relayed copy, within 300 ms) kills them.
 */
export async function runPrimary(config: Config, logger: Logger): Promise<void> {
  const live = new Set<Worker>()
  const listened = new Set<Worker>()
  const deaths: number[] = []
  let database: DatabaseTarget | undefined
  let stopping = false
  let exitCode = 0
  let lastSignalAt = 0
  let finish: () => void = () => {}
  const stopped = new Promise<void>((resolve) => (finish = resolve))

  const stop = (reason: string) => {
    if (stopping) {
      if (Date.now() - lastSignalAt < 300) return
      logger.warn('second signal: stopping the workers now')
      for (const worker of live) worker.process.kill('SIGKILL')
      return
    }
    stopping = true
    lastSignalAt = Date.now()
    logger.info({ reason }, live.size ? 'shutting down workers' : 'shutting down')
    if (live.size === 0) finish()
    for (const worker of live) worker.process.kill('SIGTERM')
  }
  // Installed first: a signal while waiting for the database or migrating stops cleanly.
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  if (process.send) process.once('disconnect', () => stop('the parent process went away'))

  try {
    database = await prepareDatabase(config, logger, { isStopping: () => stopping })
  } catch (error) {
    logger.fatal(`startup failed: ${(error as Error).message}`)
    await database?.release().catch(() => {})
    process.exit(1)
  }

  let metricsServer: { close(): Promise<void> } | undefined
  if (config.METRICS_PORT !== 0) {
    try {
      metricsServer = await serveMetrics(config, logger, clusterMetrics())
    } catch (error) {
      logger.fatal(`startup failed: cannot open the metrics listener on ${config.METRICS_HOST}:${config.METRICS_PORT} (${(error as NodeJS.ErrnoException).code}): set METRICS_PORT= to another port, or 0 for none`)
      await database.release().catch(() => {})
      process.exit(1)
    }
  }
  const env = {
    DATABASE_URL: database.connectionString,
    MIGRATION_DATABASE_URL: database.migrationConnectionString,
    MIGRATE_ON_START: 'false',
    SEED_ON_START: 'false'
  }
  const fork = () => live.add(cluster.fork(env))
  cluster.on('listening', (worker) => {
    listened.add(worker)
    // Under `make dev`-style parents: ready once every worker listens.
    if (listened.size === config.WEB_CONCURRENCY && process.send && process.connected) process.send({ event: 'listening' })
  })
  cluster.on('exit', (worker, code, signal) => {
    live.delete(worker)
    if (stopping) {
      if (code) exitCode = Math.max(exitCode, code)
      if (live.size === 0) finish()
      return
    }
    const now = Date.now()
    deaths.push(now)
    while ((deaths[0] ?? now) < now - DEATH_WINDOW_MS) deaths.shift()
    if (!listened.has(worker) || deaths.length > MAX_DEATHS) {
      logger.fatal({ pid: worker.process.pid, code, signal }, listened.has(worker) ? `${deaths.length} workers died within a minute; stopping` : 'a worker failed to start; stopping')
      exitCode = 1
      stop('a worker failed')
      return
    }
    logger.error({ pid: worker.process.pid, code, signal }, 'worker died; starting another')
    fork()
  })
  if (!stopping) {
    for (let i = 0; i < config.WEB_CONCURRENCY; i++) fork()
    logger.info(`started ${config.WEB_CONCURRENCY} workers (WEB_CONCURRENCY)`)
  }
  await stopped
  await metricsServer?.close()
  await database.release().catch(() => {})
  logger.info('shutdown complete')
  process.exit(exitCode)
}
