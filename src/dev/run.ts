import { spawn, type ChildProcess } from 'node:child_process'
import { watch, type FSWatcher } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { childProcessEnv, loadConfigOrExit } from '../config.js'
import { resolveDatabase, type DatabaseTarget } from '../prepare-database.js'
import { describeTarget } from '../db/wait.js'
import { createLogger } from '../lib/logger.js'

/**
 * `make dev`: the service, restarted on every change to its code or `.env`,
 * on a database that outlives the restarts.
 *
 * - The embedded PostgreSQL (when no database is configured) is started here, once, and
 *   handed to each server process as DATABASE_URL; a restart costs a second, not a
 *   database start. The last user of the embedded server stops it.
 * - The server runs in a process group of its own, so a terminal's Ctrl-C reaches this
 *   process only, which passes exactly one SIGTERM on: one Ctrl-C is one graceful stop.
 *   A second Ctrl-C passes a second signal on, which makes the server exit at once.
 * - A server that fails before it ever listened (bad PORT, port taken, database
 *   unreachable) ends `make dev` with its exit code and its error as the last line. One
 *   that fails after a change waits for the next change.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SERVER = fileURLToPath(new URL('../server.ts', import.meta.url))

const config = loadConfigOrExit()
const logger = createLogger(config)

/** After the service failed to start, stopping says nothing: its error stays the last line. */
let quiet = false
let database: DatabaseTarget
try {
  database = await resolveDatabase(config, (message) => quiet || logger.info(message))
} catch (error) {
  logger.fatal(`make dev: ${(error as Error).message}`)
  process.exit(1)
}
if (database.source === 'embedded') {
  logger.info(`make dev: embedded PostgreSQL ${describeTarget(database.connectionString)} ready; it stays up across restarts, and the service gets it as DATABASE_URL`)
}

let child: ChildProcess | undefined
let everListened = false
let stopping = false
/** Each server's stop, once: a second SIGTERM would make it exit without draining. */
const stops = new WeakMap<ChildProcess, Promise<number>>()

let started = 0
function startServer() {
  // One process: reloading on change restarts it, and WEB_CONCURRENCY is for production.
  // Only the first start migrates: a restart on a change never applies a migration behind
  // the user's back (a file `make migration` just made, or one half written); `make
  // migrate` does, or the next `make dev`. Readiness says what is pending meanwhile.
  const env = childProcessEnv({
    WEB_CONCURRENCY: '1',
    ...(started++ > 0 ? { MIGRATE_ON_START: 'false' } : {}),
    ...(database.source === 'embedded' ? { DATABASE_URL: database.connectionString } : {})
  })
  const server = spawn(process.execPath, ['--import', 'tsx', SERVER], { cwd: process.cwd(), env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true })
  child = server
  server.on('message', (message: { event?: string }) => {
    if (message?.event === 'listening') everListened = true
  })
  server.on('exit', (code, signal) => {
    if (child === server) child = undefined
    if (stopping || stops.has(server)) return // we stopped it
    if (!everListened) {
      // Failed before it ever served: nothing a file change would fix. Its error is the last line.
      void finish(code || 1, { quiet: true })
      return
    }
    logger.warn(`make dev: the service stopped (${signal ?? `exit code ${code}`}); waiting for a change to restart it`)
  })
}

/** SIGTERM, then SIGKILL if it has not exited by the end of its grace period; resolves with its exit code. */
function stopServer(): Promise<number> {
  const server = child
  if (!server || server.exitCode !== null || server.signalCode !== null) return Promise.resolve(server?.exitCode ?? 0)
  let stop = stops.get(server)
  if (stop === undefined) {
    stop = new Promise((resolve) => {
      const killer = setTimeout(() => server.kill('SIGKILL'), config.SHUTDOWN_GRACE_MS + 2000)
      server.once('exit', (code) => {
        clearTimeout(killer)
        resolve(code ?? 1)
      })
      server.kill('SIGTERM')
    })
    stops.set(server, stop)
  }
  return stop
}

let pending: NodeJS.Timeout | undefined
const changed = new Set<string>()
function onChange(path: string) {
  if (stopping) return
  changed.add(path)
  clearTimeout(pending)
  // Editors write a file in several steps: restart once they are done.
  pending = setTimeout(() => void restart(), 150)
}

/** One restart at a time; changes made while one runs lead to one more, not to one each. */
let restarting: Promise<void> | undefined
function restart(): Promise<void> {
  restarting ??= (async () => {
    while (changed.size > 0 && !stopping) {
      logger.info(`make dev: ${[...changed].join(', ')} changed; restarting the service`)
      changed.clear()
      await stopServer()
      if (changed.size === 0 && !stopping) startServer()
    }
    restarting = undefined
  })()
  return restarting
}

// src/ recursively (not migrations/: see startServer); .env through the project directory,
// so an editor that saves by renaming (a new inode) or a .env created later is still seen.
const watchers: FSWatcher[] = [
  ...['src'].map((name) => watch(join(ROOT, name), { recursive: true }, (_event, file) => onChange(join(name, file ?? '')))),
  watch(ROOT, (_event, file) => file === '.env' && onChange('.env'))
]
for (const watcher of watchers) watcher.on('error', (error) => logger.warn(`make dev: watching for changes failed: ${error.message}`))

/** Stops the service, then lets go of the embedded PostgreSQL; `code` overrides the service's exit code. Once. */
let finishing: Promise<void> | undefined
function finish(code?: number, options: { quiet?: boolean } = {}): Promise<void> {
  finishing ??= (async () => {
    stopping = true
    quiet = options.quiet ?? false
    for (const watcher of watchers) watcher.close()
    clearTimeout(pending)
    const exitCode = code ?? (await stopServer())
    await database.release().catch((error: Error) => logger.error(`make dev: could not stop the embedded PostgreSQL: ${error.message}`))
    if (!quiet) logger.info('make dev: shutdown complete')
    // pino-pretty writes from a worker thread: let it finish before exiting.
    logger.flush(() => process.exit(exitCode))
  })()
  return finishing
}

// A parent that relays the terminal's signal (npm run) delivers the same Ctrl-C twice in
// a few milliseconds; only a later one is a second Ctrl-C.
let firstSignalAt: number | undefined
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    const now = Date.now()
    if (firstSignalAt === undefined) {
      firstSignalAt = now
      logger.info(`make dev: ${signal}; stopping the service`)
      void finish()
    } else if (now - firstSignalAt > 300) {
      child?.kill('SIGTERM') // the server's second signal: exit without waiting
    }
  })
}

startServer()
