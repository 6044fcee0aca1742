import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { HttpProblem, jsonResponse, problemResponses } from '../lib/problem.js'
import { shuttingDownProblem } from '../plugins/lifecycle.js'

const Check = Type.Object({ status: Type.String(), detail: Type.Optional(Type.String()) })

/**
 * Liveness says the process is up and never touches the database (a restart would not
 * fix a database outage). Readiness says whether to send traffic here: the database
 * answers, the schema is current, and the service is not shutting down.
 */
const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
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
    async (_request, reply) => {
      if (app.lifecycle.shuttingDown) {
        throw shuttingDownProblem('the service is shutting down', { checks: { shutdown: { status: 'failing', detail: 'shutting down' } } })
      }
      const report = await app.lifecycle.checkDatabase()
      if (!report.ready) {
        const failed = Object.entries(report.checks).filter(([, check]) => check.status !== 'ok')
        const detail = failed.map(([name, check]) => `${name} check failed: ${check.detail ?? 'failing'}`).join('; ')
        throw new HttpProblem(503, 'NOT_READY', detail, { checks: report.checks, retryAfterSeconds: 5 })
      }
      reply.header('Cache-Control', 'no-store')
      return { status: 'ok' as const, checks: report.checks }
    }
  )
}

export default healthRoutes
