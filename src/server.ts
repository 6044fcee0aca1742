import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { withClient } from './db/client.js'
import { pendingMigrations, runMigrations } from './db/migrate.js'
import { isEmpty, seedDatabase } from './db/seed.js'
import { describeTarget, resolveDatabase, type DatabaseTarget } from './db/target.js'
import { waitForDatabase } from './db/wait.js'
import { createLogger } from './logger.js'

/**
 * The boot sequence: config, database, wait, migrate, build, listen. Nothing listens
 * until the schema is current, so readiness is only ever green on a usable service.
 */
function readConfig(): Config {
  try {
    return loadConfig()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`${error.message}\nSee README.md (Configuration) for every variable.\n`)
    process.exit(1)
  }
}

const config = readConfig()
const logger = createLogger(config)
let app: FastifyInstance | undefined
let database: DatabaseTarget | undefined

// Installed first, so a signal during the database wait still stops cleanly. The first
// SIGTERM/SIGINT turns readiness red, waits SHUTDOWN_DELAY_MS for load balancers to
// notice, then closes: no new connections, in-flight requests finish, the pool closes,
// exit 0. A second signal, or SHUTDOWN_GRACE_MS passing, forces the exit (code 1).
closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS, logger: { error: (message: unknown) => logger.error(String(message)) } }, async ({ signal, err }) => {
  if (err) logger.error({ err }, 'fatal error; shutting down')
  else logger.info({ signal }, 'shutting down')
  if (app) {
    app.lifecycle.shuttingDown = true
    if (config.SHUTDOWN_DELAY_MS > 0 && !err) await new Promise((resolve) => setTimeout(resolve, config.SHUTDOWN_DELAY_MS))
    await app.close()
  }
  await database?.release()
  logger.info('shutdown complete')
})

try {
  database = await resolveDatabase(config, (message) => logger.info(message))
  const { connectionString } = database
  logger.info({ database: describeTarget(connectionString), source: database.source }, 'using database')

  await waitForDatabase(connectionString, {
    deadlineMs: config.DATABASE_WAIT_SECONDS * 1000,
    connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
    onRetry: ({ attempt, delayMs, reason }) => logger.warn({ attempt, retryInMs: delayMs, reason }, 'database not ready yet')
  })

  if (config.MIGRATE_ON_START) {
    const applied = await runMigrations(connectionString, { logger: { info: (m) => logger.debug(m), warn: (m) => logger.warn(m) } })
    logger.info({ applied }, applied.length ? `applied ${applied.length} migration(s)` : 'schema is up to date')
  } else {
    logger.info('MIGRATE_ON_START=false: not migrating; /health/ready reports pending migrations')
  }

  if (config.SEED_ON_START !== 'false') {
    const pending = await withClient(connectionString, (client) => pendingMigrations(client))
    if (pending.length > 0) {
      logger.warn({ pending }, 'SEED_ON_START: not seeding, migrations are pending')
    } else if (config.SEED_ON_START === 'true' || (await isEmpty(connectionString))) {
      const seeded = await seedDatabase(connectionString)
      logger.info(seeded, `demo data: added ${seeded.todos.added} todos and ${seeded.cats.added} cats`)
    }
  }

  app = await buildApp({ config, connectionString, loggerInstance: logger })
  await app.listen({ host: config.HOST, port: config.PORT })
} catch (error) {
  logger.fatal({ err: error }, `startup failed: ${(error as Error).message}`)
  await app?.close().catch(() => {})
  await database?.release().catch(() => {})
  process.exit(1)
}
