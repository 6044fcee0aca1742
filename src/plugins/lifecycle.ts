import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Server } from 'node:http'
import { Server as NetServer } from 'node:net'
import pg from 'pg'
import { migrationFiles, type MigrationFile } from '../db/migration-files.js'
import { compareMigrations, driftMessage, recorded } from '../db/migration-status.js'
import { HttpProblem } from '../lib/problem.js'
import { errorLine } from '../logger.js'

/**
 * One readiness check. `code` is what the public answer says of a failing check (stable,
 * for alerts and runbooks); `reason` is the driver's or the database's own words, which
 * name hosts and tables: the log gets it, never the answer.
 */
export interface CheckResult {
  status: 'ok' | 'failing'
  code?: 'DATABASE_UNAVAILABLE' | 'MIGRATIONS_PENDING' | 'MIGRATIONS_CHANGED' | 'NOT_CHECKED' | 'MIGRATION_DATABASE_UNAVAILABLE'
  detail?: string
  reason?: string
}

export interface ReadinessReport {
  ready: boolean
  checks: { database: CheckResult; migrations: CheckResult; migrationDatabase?: CheckResult }
}

/**
 * Where the process is in its life, and whether to send it traffic:
 * - `beginShutdown()` (server.ts, on SIGTERM): readiness turns red so load balancers that
 *   probe it stop sending; requests are still served as before, keep-alive included;
 * - `drain()` (server.ts, after SHUTDOWN_DELAY_MS): see below;
 * - once the app closes (Fastify's preClose), every new request answers 503;
 * - `checkDatabase()`: the database answers and every migration is applied.
 */
export interface Lifecycle {
  readonly shuttingDown: boolean
  beginShutdown(): void
  drain(server: Server, idleMs: number): Promise<void>
  checkDatabase(): Promise<ReadinessReport>
}

declare module 'fastify' {
  interface FastifyInstance {
    lifecycle: Lifecycle
  }
}

/** How long readiness waits for the database; the probe must answer within ~1 s. */
const PROBE_TIMEOUT_MS = 500

/** The 503 for a request that reaches a process on its way out. */
export const shuttingDownProblem = (detail: string, extra: ConstructorParameters<typeof HttpProblem>[3] = {}) =>
  new HttpProblem(503, 'SHUTTING_DOWN', detail, { retryAfterSeconds: 5, ...extra })

async function lifecyclePlugin(app: FastifyInstance, options: { direct?: string }) {
  let shuttingDown = false
  let draining = false
  let closing = false
  // Read once, at start-up: the files this release expects to find applied.
  const expected = await migrationFiles()
  let inFlight: Promise<ReadinessReport> | undefined
  // With a pooler in front of the database, the next release's migrations need the direct
  // way in too (MIGRATION_DATABASE_URL): one connection, kept while probes keep coming.
  const direct = options.direct
    ? new pg.Pool({ connectionString: options.direct, max: 1, idleTimeoutMillis: 30_000, connectionTimeoutMillis: PROBE_TIMEOUT_MS, application_name: 'todos-api readiness' })
    : undefined
  direct?.on('error', () => {}) // an idle connection lost: the next probe reconnects
  app.addHook('onClose', async () => direct?.end())

  app.decorate<Lifecycle>('lifecycle', {
    get shuttingDown() {
      return shuttingDown
    },
    beginShutdown() {
      shuttingDown = true
    },
    /**
     * Stops accepting connections, and lets the open ones finish rather than cutting them:
     * - the listener closes, so a load balancer's next new connection is refused, which
     *   nginx retries on another replica for any method (nothing was sent);
     * - a request arriving on a connection already open is served as usual, and every
     *   answer from now on closes its connection (never a 503: for a POST that would be a
     *   failed request nobody retries);
     * - connections left idle are for their clients to close (nginx's keepalive_timeout
     *   is shorter than `idleMs`); any still idle after `idleMs` are closed then. Closing
     *   them at once, as http.Server#close does, races a request being sent on them.
     */
    async drain(server, idleMs) {
      shuttingDown = true
      draining = true
      const drained = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()))
      app.log.info('draining: no new connections; open ones finish')
      const timer = setTimeout(() => server.closeIdleConnections(), idleMs)
      await drained
      clearTimeout(timer)
    },
    checkDatabase() {
      // One probe at a time: a hung database must not make every probe take a pool slot.
      // The pool is the db plugin's, registered after this one (its hooks must run first).
      inFlight ??= probe(app.pg.pool, expected, direct).finally(() => {
        inFlight = undefined
      })
      return inFlight
    }
  })

  app.addHook('preClose', async () => {
    shuttingDown = true
    closing = true
  })
  // Callback hooks: these run on every request, and an async hook costs a promise each.
  app.addHook('onRequest', (_request, _reply, done) => {
    done(closing ? shuttingDownProblem('the service is shutting down; retry on another instance') : undefined)
  })
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining || closing) reply.header('Connection', 'close')
    done(null, payload)
  })
}

async function probe(pool: pg.Pool, expected: MigrationFile[], direct: pg.Pool | undefined): Promise<ReadinessReport> {
  const [report, migrationDatabase] = await Promise.all([probePool(pool, expected), direct && probeDirect(direct)])
  if (migrationDatabase === undefined) return report
  return { ready: report.ready && migrationDatabase.status === 'ok', checks: { ...report.checks, migrationDatabase } }
}

async function probeDirect(direct: pg.Pool): Promise<CheckResult> {
  try {
    await withinProbeTimeout(direct.query({ text: 'SELECT 1', query_timeout: PROBE_TIMEOUT_MS } as pg.QueryConfig))
    return { status: 'ok' }
  } catch (error) {
    return { status: 'failing', code: 'MIGRATION_DATABASE_UNAVAILABLE', reason: `MIGRATION_DATABASE_URL: ${errorLine(error)}` }
  }
}

async function withinProbeTimeout<T>(work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS)
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function probePool(pool: pg.Pool, expected: MigrationFile[]): Promise<ReadinessReport> {
  try {
    const history = await withinProbeTimeout(
      (async () => {
        // query_timeout per query is supported by pg but missing from its types.
        await pool.query({ text: 'SELECT 1', query_timeout: PROBE_TIMEOUT_MS } as pg.QueryConfig)
        return recorded(pool)
      })()
    )
    // As start-up judges it: pending files, and files changed or gone since they ran.
    // Migrations recorded after every file are a newer release's (a rolling deploy): fine.
    const entries = compareMigrations(expected, history)
    const pending = entries.filter((entry) => entry.state === 'pending').map((entry) => entry.name)
    const drift = driftMessage(entries, { tolerateAhead: true })
    const problems = [...(pending.length > 0 ? [`pending: ${pending.join(', ')}`] : []), ...(drift ? [drift] : [])]
    const migrations: CheckResult =
      problems.length === 0
        ? { status: 'ok', detail: `${expected.length} applied` }
        : { status: 'failing', code: drift ? 'MIGRATIONS_CHANGED' : 'MIGRATIONS_PENDING', reason: problems.join('; ') }
    return { ready: problems.length === 0, checks: { database: { status: 'ok' }, migrations } }
  } catch (error) {
    return {
      ready: false,
      checks: { database: { status: 'failing', code: 'DATABASE_UNAVAILABLE', reason: errorLine(error) }, migrations: { status: 'failing', code: 'NOT_CHECKED' } }
    }
  }
}

export default fp(lifecyclePlugin, { name: 'lifecycle', fastify: '5.x' })
