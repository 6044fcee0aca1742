import cluster from 'node:cluster'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { loadConfigOrExit } from './config.js'
import type { DatabaseTarget } from './prepare-database.js'
import { MigrationError } from './db/migrate.js'
import { prepareDatabase } from './prepare-database.js'
import { DatabaseUnavailableError } from './db/wait.js'
import { createLogger } from './lib/logger.js'
import { serveMetrics } from './metrics-server.js'
import { tracing } from './otel.js'
import { runPrimary } from './primary.js'

/**
 * The boot sequence (server.ts loads it once tracing is set up): config, database, wait, migrate, build, listen. Nothing listens
 * until the schema is current, so readiness is only ever green on a usable service.
 */
const config = loadConfigOrExit()
const logger = createLogger(config)
if (config.WEB_CONCURRENCY > 1 && cluster.isPrimary) await runPrimary(config, logger)
else await serve()

async function serve() {
  let app: FastifyInstance | undefined
  let database: DatabaseTarget | undefined
  let metricsServer: { close(): Promise<void> } | undefined
  /** After a failed start, cleaning up says nothing: the error stays the last line. */
  let quiet = false
  let stopping = false

  // Installed first, so a signal during the database wait still stops cleanly. The first
  // SIGTERM/SIGINT turns readiness red and keeps serving for SHUTDOWN_DELAY_MS, while load
  // balancers notice; then the listener closes and open connections finish their requests
  // (idle ones get up to SHUTDOWN_DELAY_MS more to be closed by their clients); then the
  // pool closes and the process exits 0. A second signal, or the delays plus
  // SHUTDOWN_GRACE_MS passing, forces the exit (code 1).
  // A worker of WEB_CONCURRENCY (primary.ts) stops on the primary's SIGTERM; it ignores
  // SIGINT, which a Ctrl-C sends to the whole process group, so that counts once.
  if (cluster.isWorker) process.on('SIGINT', () => {})
  const grace = closeWithGrace({ delay: 2 * config.SHUTDOWN_DELAY_MS + config.SHUTDOWN_GRACE_MS, skip: cluster.isWorker ? ['SIGINT'] : [], logger: { error: (message: unknown) => logger.error(String(message)) } }, async ({ signal, err }) => {
    stopping = true
    if (err) logger.error({ err }, 'fatal error; shutting down')
    else logger.info({ signal: signal ?? 'the parent process went away' }, 'shutting down')
    if (app) {
      app.shutdown.begin()
      if (config.SHUTDOWN_DELAY_MS > 0 && !err) {
        await new Promise((resolve) => setTimeout(resolve, config.SHUTDOWN_DELAY_MS))
        await app.shutdown.drain(app.server, config.SHUTDOWN_DELAY_MS)
      }
      await app.close()
    }
    await metricsServer?.close()
    await database?.release()
    // The spans of the last requests are exported before the process ends.
    await tracing?.shutdown().catch((error: unknown) => logger.warn({ err: error }, 'traces could not be flushed'))
    logger.info('shutdown complete')
  })

  // Under `make dev` the service runs in a process group of its own, so its parent's IPC
  // channel closing is how it learns the parent died, at any point of its life: stop as
  // if signalled rather than live on as an orphan holding the port.
  if (process.send) process.once('disconnect', () => stopping || void grace.close())

  try {
    database = await prepareDatabase(config, logger, { quiet: () => quiet, worker: cluster.isWorker })
    const { connectionString, migrationConnectionString } = database

    app = await buildApp({ config, connectionString, migrationConnectionString, loggerInstance: logger, tracing })
    // A worker's figures reach Prometheus through the primary's listener (primary.ts).
    const { registry } = app.metrics
    if (config.METRICS_PORT !== 0 && !cluster.isWorker) metricsServer = await serveMetrics(config, logger, () => registry.metrics())
    await app.listen({ host: config.HOST, port: config.PORT })
    // Under `make dev` (src/dev/run.ts) the parent waits for this.
    if (process.send && process.connected) process.send({ event: 'listening' })
  } catch (error) {
    // A failure the message explains in full is one line, and the last one; anything else
    // is a bug, logged with what the error carries.
    const explained = error instanceof DatabaseUnavailableError || error instanceof MigrationError || isListenError(error)
    logger.fatal(explained ? {} : { err: error }, `startup failed: ${startupFailure(error)}`)
    quiet = true
    await app?.close().catch(() => {})
    await metricsServer?.close().catch(() => {})
    await database?.release().catch(() => {})
    process.exit(1)
  }
}

function isListenError(error: unknown): boolean {
  return ['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL'].includes((error as NodeJS.ErrnoException).code ?? '') && (error as { syscall?: string }).syscall === 'listen'
}

function startupFailure(error: unknown): string {
  const { port } = error as { port?: number }
  if (config.METRICS_PORT !== 0 && port === config.METRICS_PORT && isListenError(error)) {
    return `cannot open the metrics listener on ${config.METRICS_HOST}:${config.METRICS_PORT} (${(error as NodeJS.ErrnoException).code}): set METRICS_PORT= to another port, or 0 for none`
  }
  if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    return `port ${config.PORT} on ${config.HOST} is already in use (another \`make dev\` or server?): stop it, or choose another port, e.g. PORT=${config.PORT + 1}`
  }
  if (isListenError(error)) return `cannot listen on ${config.HOST}:${config.PORT}: ${(error as Error).message}; set HOST= or PORT=`
  return (error as Error).message
}
