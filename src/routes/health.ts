import { Type, type FastifyPluginAsyncTypebox, type Static } from '@fastify/type-provider-typebox'
import { HttpProblem, jsonResponse, problemResponses } from '../lib/problem.js'
import { shuttingDownProblem, type CheckResult, type ReadinessReport } from '../plugins/lifecycle.js'

const Check = Type.Object({ status: Type.String(), code: Type.Optional(Type.String()), detail: Type.Optional(Type.String()) })

/** The public form of the checks: each failing one by its code; the reasons go to the log. */
const publicCheck = ({ status, code, detail }: CheckResult): Static<typeof Check> => (status === 'ok' ? { status, ...(detail ? { detail } : {}) } : { status, ...(code ? { code } : {}) })
const publicChecks = ({ database, migrations, migrationDatabase }: ReadinessReport['checks']) => ({
  database: publicCheck(database),
  migrations: publicCheck(migrations),
  ...(migrationDatabase ? { migrationDatabase: publicCheck(migrationDatabase) } : {})
})

/**
 * Liveness says the process is up and never touches the database (a restart would not
 * fix a database outage). Readiness says whether to send traffic here: the database
 * answers, the schema is current, and the service is not shutting down.
 */
const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // The reasons of the last failing probe: a reason is logged when it changes, not on every probe.
  let lastReasons = ''
  app.get(
    '/health/live',
    {
      logLevel: 'warn',
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process is up',
        response: { 200: jsonResponse(Type.Object({ status: Type.Literal('ok') }), 'Up'), ...problemResponses() }
      }
    },
    async () => ({ status: 'ok' as const })
  )

  app.get(
    '/health/ready',
    {
      logLevel: 'warn',
      schema: {
        tags: ['health'],
        summary: 'Readiness: the database answers and every migration is applied',
        response: {
          200: jsonResponse(Type.Object({ status: Type.Literal('ok'), checks: Type.Object({ database: Check, migrations: Check, migrationDatabase: Type.Optional(Check) }) }), 'Ready', ['Cache-Control']),
          ...problemResponses()
        }
      }
    },
    async (request, reply) => {
      if (app.lifecycle.shuttingDown) {
        throw shuttingDownProblem('the service is shutting down', { checks: { shutdown: { status: 'failing', code: 'SHUTTING_DOWN' } } })
      }
      const report = await app.lifecycle.checkDatabase()
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

export default healthRoutes
