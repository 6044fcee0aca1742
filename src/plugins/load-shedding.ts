import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { overloaded } from '../lib/problem.js'

/**
 * Load shedding on the event loop (@fastify/under-pressure): while its mean delay over the
 * last second passes SHED_EVENT_LOOP_DELAY_MS, every request is answered at once with 503
 * OVERLOADED and `Retry-After: 1`, instead of queueing behind the rest until clients time
 * out. The health probes are not shed: an overloaded instance is busy, not sick, and a
 * load balancer that took it out would only push its load onto the others. (The wait for a
 * database connection is shed in db/plugin.ts, DATABASE_MAX_QUEUE.)
 */
async function loadSheddingPlugin(app: FastifyInstance) {
  const maxEventLoopDelay = app.config.SHED_EVENT_LOOP_DELAY_MS
  if (maxEventLoopDelay === 0) return
  await app.register(underPressure, {
    maxEventLoopDelay,
    pressureHandler: async (request) => {
      if (request.routeOptions.url?.startsWith('/health/')) return
      throw overloaded('the service is overloaded; try again in a moment')
    }
  })
}

export default fp(loadSheddingPlugin, { name: 'load-shedding', fastify: '5.x', dependencies: ['@fastify/env', 'errors'] })
