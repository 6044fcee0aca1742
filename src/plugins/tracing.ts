import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Tracing } from '../lib/tracing.js'

/**
 * OpenTelemetry traces, when otel.ts started them (OTEL_* settings): a span per request
 * from @fastify/otel, a child span per statement from instrumentation-pg, a span per
 * batched statement linked to every request it serves (resources/engine/batching.ts).
 * Registered before the routes, which @fastify/otel must see defined. Without tracing it
 * registers nothing and `app.batchTracer` is undefined.
 */
async function tracingPlugin(app: FastifyInstance, options: { tracing: Tracing | undefined }) {
  const { tracing } = options
  app.decorate('batchTracer', tracing?.batches)
  if (tracing === undefined) return
  await app.register(tracing.plugin)
  // The user, once authenticated; a token is never put on a span (its owner is known to
  // the statements only, so a token's request carries no user id).
  app.addHook('preHandler', (request, _reply, done) => {
    const userId = request.owner?.userId
    if (userId !== undefined) tracing.setUser(request, userId)
    done()
  })
}

export default fp(tracingPlugin, { name: 'tracing', fastify: '5.x' })
