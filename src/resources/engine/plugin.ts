import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { CANCEL_GRACE_MS } from '../../db/pg-adapter.js'
import { runPeriodically } from '../../lib/periodic.js'
import type { AnyResource } from './define.js'
import { createExecutor } from './execute.js'
import { createIdempotency, type Idempotency } from './idempotency.js'
import resourceRoutes from './routes.js'
import { resourceStatements } from './statements.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The Idempotency-Key store every resource's creates share (idempotency.ts). */
    idempotency: Idempotency
  }
}

/** Expired idempotency keys are deleted this often, a batch at a time, by every instance. */
const REAP_EVERY_MS = 10 * 60_000

/**
 * The resource engine: each resource's routes at its path, its statements built once from
 * its definition and run through one executor (batched per turn of the event loop when
 * DATABASE_BATCHING is on), the Idempotency-Key store they share, with its reaper.
 */
async function resourcesPlugin(app: FastifyInstance, options: { resources: readonly AnyResource[] }) {
  const { config } = app
  // A claim an earlier release made and gave up on is free once no statement of it can still run.
  const staleClaimSeconds = Math.ceil((config.DATABASE_STATEMENT_TIMEOUT_MS + 2 * CANCEL_GRACE_MS + config.DATABASE_CONNECT_TIMEOUT_MS) / 1000) + 1
  const idempotency = createIdempotency(app.db, { ttlHours: config.IDEMPOTENCY_KEY_TTL_HOURS, staleClaimSeconds })
  app.decorate('idempotency', idempotency)
  runPeriodically(app, 'expired idempotency keys', REAP_EVERY_MS, () => idempotency.reap())
  for (const resource of options.resources) {
    const watch = (operation: 'read' | 'create') => ({ sizes: app.metrics.batchSize.child(resource.plural, operation), tracer: app.batchTracer, name: `${resource.plural} ${operation}` })
    const executor = createExecutor(app.db, resourceStatements(resource), {
      batching: config.DATABASE_BATCHING,
      watch: { read: watch('read'), create: watch('create') },
      constraints: resource.constraints
    })
    await app.register(resourceRoutes, { prefix: resource.path, resource, executor, idempotency })
  }
}

export default fp(resourcesPlugin, { name: 'resources', fastify: '5.x', dependencies: ['db', 'auth', 'metrics', 'tracing'] })
