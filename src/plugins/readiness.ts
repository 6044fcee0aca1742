import { Type, type FastifyPluginAsyncTypebox, type Static } from '@fastify/type-provider-typebox'
import fp from 'fastify-plugin'
import pg from 'pg'
import { migrationFiles, type MigrationFile } from '../db/migration-files.js'
import { compareMigrations, driftMessage, recorded } from '../db/migration-status.js'
import { errorLine } from '../lib/logger.js'
import type {} from '../lib/metrics.js'
import { HttpProblem, jsonResponse, problemResponses } from '../lib/problem.js'
import { shuttingDownProblem } from './shutdown.js'

/**
 * One readiness check. `code` is what the public answer says of a failing check (stable,
 * for alerts and runbooks); `reason` is the driver's or the database's own words, which
 * name hosts and tables: the log gets it, never the answer.
 */
export interface CheckResult {
  status: 'ok' | 'failing'
  code?: 'DATABASE_UNAVAILABLE' | 'DATABASE_NOT_PRIMARY' | 'MIGRATIONS_PENDING' | 'MIGRATIONS_CHANGED' | 'NOT_CHECKED' | 'MIGRATION_DATABASE_UNAVAILABLE'
  detail?: string
  reason?: string
}

export interface ReadinessReport {
  ready: boolean
  checks: { database: CheckResult; migrations: CheckResult; migrationDatabase?: CheckResult }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The database answers and every migration is applied (and the direct connection answers, when there is one). */
    checkReadiness(): Promise<ReadinessReport>
  }
}

/** How long readiness waits for the database; the probe must answer within ~1 s. */
const PROBE_TIMEOUT_MS = 500

const Check = Type.Object({ status: Type.String(), code: Type.Optional(Type.String()), detail: Type.Optional(Type.String()) })

/** The public form of a check: a failing one by its code; the reasons go to the log. */
const publicCheck = ({ status, code, detail }: CheckResult): Static<typeof Check> => (status === 'ok' ? { status, ...(detail ? { detail } : {}) } : { status, ...(code ? { code } : {}) })
const publicChecks = ({ database, migrations, migrationDatabase }: ReadinessReport['checks']) => ({
  database: publicCheck(database),
  migrations: publicCheck(migrations),
  ...(migrationDatabase ? { migrationDatabase: publicCheck(migrationDatabase) } : {})
})

/**
 * `/health/live` says the process is up and never touches the database (a restart would
 * not fix a database outage). `/health/ready` says whether to send traffic here: the
 * database answers, the schema is current, and the service is not shutting down.
 */
const readinessPlugin: FastifyPluginAsyncTypebox<{ direct?: string | undefined }> = async (app, options) => {
  // Read once, at start-up: the files this release expects to find applied.
  const expected = await migrationFiles()
  // With a pooler in front of the database, the next release's migrations need the direct
  // way in too (MIGRATION_DATABASE_URL): one connection, kept while probes keep coming.
  const direct = options.direct
    ? new pg.Pool({ connectionString: options.direct, max: 1, idleTimeoutMillis: 30_000, connectionTimeoutMillis: PROBE_TIMEOUT_MS, application_name: 'todos-api readiness' })
    : undefined
  direct?.on('error', () => {}) // an idle connection lost: the next probe reconnects
  app.addHook('onClose', async () => direct?.end())

  let inFlight: Promise<ReadinessReport> | undefined
  // One probe at a time: a hung database must not make every probe take a pool slot.
  const record = (report: ReadinessReport) => {
    for (const [name, check] of Object.entries(report.checks)) app.metrics.setReadiness(name, check.status === 'ok')
    return report
  }
  app.decorate('checkReadiness', () => (inFlight ??= probe(app.pg.pool, expected, direct).then(record).finally(() => (inFlight = undefined))))

  app.get(
    '/health/live',
    { logLevel: 'warn', schema: { tags: ['health'], summary: 'Liveness: the process is up', response: { 200: jsonResponse(Type.Object({ status: Type.Literal('ok') }), 'Up'), ...problemResponses() } } },
    async () => ({ status: 'ok' as const })
  )

  // The reasons of the last failing probe: a reason is logged when it changes, not on every probe.
  let lastReasons = ''
  app.get(
    '/health/ready',
    {
      logLevel: 'warn',
      schema: {
        tags: ['health'],
        summary: 'Readiness: the database answers as a primary and every migration is applied',
        response: {
          200: jsonResponse(Type.Object({ status: Type.Literal('ok'), checks: Type.Object({ database: Check, migrations: Check, migrationDatabase: Type.Optional(Check) }) }), 'Ready', ['Cache-Control']),
          ...problemResponses()
        }
      }
    },
    async (request, reply) => {
      if (app.shutdown.started) throw shuttingDownProblem('the service is shutting down', { checks: { shutdown: { status: 'failing', code: 'SHUTTING_DOWN' } } })
      const report = await app.checkReadiness()
      if (!report.ready) {
        const failed = Object.entries(report.checks).filter(([, check]) => check.status !== 'ok')
        const reasons = failed.map(([name, check]) => `${name}: ${check.reason ?? check.code}`).join('; ')
        if (reasons !== lastReasons) request.log.warn({ reasons }, 'not ready')
        lastReasons = reasons
        const detail = failed.map(([name, check]) => `${name} check failed (${check.code})`).join('; ')
        throw new HttpProblem(503, 'NOT_READY', detail, { checks: publicChecks(report.checks), retryAfterSeconds: 5 })
      }
      lastReasons = ''
      reply.header('Cache-Control', 'no-store')
      return { status: 'ok' as const, checks: publicChecks(report.checks) }
    }
  )
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

/**
 * The request pool reaches a primary: a standby would refuse every write. A connection
 * that reaches a standby is dropped, not kept for a request (behind HAProxy, the next one
 * may reach the node just promoted).
 */
async function assertPrimary(pool: pg.Pool): Promise<void> {
  const client = await pool.connect()
  let broken: Error | undefined
  try {
    // query_timeout per query is supported by pg but missing from its types.
    const { rows } = await client.query<{ standby: boolean }>({ text: 'SELECT pg_is_in_recovery() AS standby', query_timeout: PROBE_TIMEOUT_MS } as pg.QueryConfig)
    if (rows[0]?.standby !== false) broken = Object.assign(new Error('the server is a standby (pg_is_in_recovery() is true)'), { code: 'DATABASE_NOT_PRIMARY' })
  } catch (error) {
    broken = error as Error
  } finally {
    client.release(broken)
  }
  if (broken) throw broken
}

async function probePool(pool: pg.Pool, expected: MigrationFile[]): Promise<ReadinessReport> {
  try {
    const history = await withinProbeTimeout(
      (async () => {
        await assertPrimary(pool)
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
    const code = (error as { code?: string }).code === 'DATABASE_NOT_PRIMARY' ? 'DATABASE_NOT_PRIMARY' : 'DATABASE_UNAVAILABLE'
    return {
      ready: false,
      checks: { database: { status: 'failing', code, reason: errorLine(error) }, migrations: { status: 'failing', code: 'NOT_CHECKED' } }
    }
  }
}

export default fp(readinessPlugin, { name: 'readiness', fastify: '5.x', dependencies: ['db', 'shutdown', 'metrics'] })
