import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { createIdempotency, type Idempotency } from '../crud/idempotency.js'
import { runPeriodically } from '../lib/periodic.js'
import { CANCEL_GRACE_MS } from './db.js'

declare module 'fastify' {
  interface FastifyInstance {
    idempotency: Idempotency
  }
}

/** Expired keys are deleted this often, a batch at a time, by every instance. */
const REAP_EVERY_MS = 10 * 60_000

/**
 * `app.idempotency` (crud/idempotency.ts) and the reaper of expired keys. A key whose
 * request was given up on stays locked for longer than any statement can run (the
 * statement limit, plus the time a cancel gets and the margin after it, plus the
 * connect timeout), so that a late
 * commit of it can never meet a second attempt.
 */
async function idempotencyPlugin(app: FastifyInstance) {
  const { config } = app
  const lockSeconds = Math.ceil((config.DATABASE_STATEMENT_TIMEOUT_MS + 2 * CANCEL_GRACE_MS + config.DATABASE_CONNECT_TIMEOUT_MS) / 1000) + 1
  const idempotency = createIdempotency(app.db, { ttlHours: config.IDEMPOTENCY_KEY_TTL_HOURS, lockSeconds })
  app.decorate('idempotency', idempotency)

  runPeriodically(app, 'expired idempotency keys', REAP_EVERY_MS, () => idempotency.reap())
}

export default fp(idempotencyPlugin, { name: 'idempotency', fastify: '5.x', dependencies: ['db'] })
