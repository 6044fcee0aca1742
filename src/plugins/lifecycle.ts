import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import pg from 'pg'
import { appliedMigrations, migrationFiles } from '../db/migrate.js'
import { HttpProblem } from '../lib/problem.js'
import { errorLine } from '../logger.js'

export interface CheckResult {
  status: 'ok' | 'failing'
  detail?: string
}

export interface ReadinessReport {
  ready: boolean
  checks: { database: CheckResult; migrations: CheckResult; migrationDatabase?: CheckResult }
}

/**
 * Where the process is in its life, and whether to send it traffic:
 * - `beginShutdown()` (server.ts, on SIGTERM): readiness turns red so load balancers stop
 *   sending, and every answer closes its connection, since a keep-alive socket left open
 *   by a request in flight would otherwise hold the server open;
 * - once the server closes (Fastify's preClose), every new request answers 503;
 * - `checkDatabase()`: the database answers and every migration is applied.
 */
export interface Lifecycle {
  readonly shuttingDown: boolean
  beginShutdown(): void
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
  let closing = false
  // Read once, at start-up: the files this release expects to find applied.
  const expected = (await migrationFiles()).map((file) => file.name)
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
    if (shuttingDown) reply.header('Connection', 'close')
    done(null, payload)
  })
}

async function probe(pool: pg.Pool, expected: string[], direct: pg.Pool | undefined): Promise<ReadinessReport> {
  const [report, migrationDatabase] = await Promise.all([probePool(pool, expected), direct && probeDirect(direct)])
  if (migrationDatabase === undefined) return report
  return { ready: report.ready && migrationDatabase.status === 'ok', checks: { ...report.checks, migrationDatabase } }
}

async function probeDirect(direct: pg.Pool): Promise<CheckResult> {
  try {
    await withinProbeTimeout(direct.query({ text: 'SELECT 1', query_timeout: PROBE_TIMEOUT_MS } as pg.QueryConfig))
    return { status: 'ok' }
  } catch (error) {
    return { status: 'failing', detail: `MIGRATION_DATABASE_URL: ${errorLine(error)}` }
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

async function probePool(pool: pg.Pool, expected: string[]): Promise<ReadinessReport> {
  try {
    const applied = await withinProbeTimeout(
      (async () => {
        // query_timeout per query is supported by pg but missing from its types.
        await pool.query({ text: 'SELECT 1', query_timeout: PROBE_TIMEOUT_MS } as pg.QueryConfig)
        return appliedMigrations(pool)
      })()
    )
    const pending = expected.filter((name) => !applied.has(name))
    const migrations: CheckResult =
      pending.length === 0 ? { status: 'ok', detail: `${expected.length} applied` } : { status: 'failing', detail: `pending: ${pending.join(', ')}` }
    return { ready: pending.length === 0, checks: { database: { status: 'ok' }, migrations } }
  } catch (error) {
    return {
      ready: false,
      checks: { database: { status: 'failing', detail: errorLine(error) }, migrations: { status: 'failing', detail: 'not checked: the database did not answer' } }
    }
  }
}

export default fp(lifecyclePlugin, { name: 'lifecycle', fastify: '5.x' })
