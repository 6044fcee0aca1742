import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { overloaded } from '../lib/problem.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** An answer that stays open for as long as its client wants (an event stream): not counted as a request under way. */
    longLived?: boolean
  }
}

/**
 * Load shedding on the event loop (@fastify/under-pressure): while its mean delay over the
 * last second passes SHED_EVENT_LOOP_DELAY_MS, every request is answered at once with 503
 * OVERLOADED and `Retry-After: 1`, instead of queueing behind the rest until clients time
 * out. The health probes are not shed: an overloaded instance is busy, not sick, and a
 * load balancer that took it out would only push its load onto the others. (The wait for a
 * database connection is shed in db/plugin.ts, DATABASE_MAX_QUEUE and DATABASE_MAX_WAIT_MS.)
 */
async function loadSheddingPlugin(app: FastifyInstance) {
  const isProbe = (request: FastifyRequest) => request.routeOptions.url?.startsWith('/health/') === true
  // Requests in flight: past SHED_MAX_IN_FLIGHT, the next is refused at once. A CPU-bound
  // overload queues work in front of the event loop, which the loop's delay (sampled from
  // timers) hardly shows; the number of requests under way does. Long-lived answers (event
  // streams, `config.longLived`) are not counted. A request takes its slot once its body is
  // in (preHandler), so a client that sends one slowly holds no slot meanwhile.
  const maxInFlight = app.config.SHED_MAX_IN_FLIGHT
  if (maxInFlight > 0) {
    let inFlight = 0
    const ended = () => void inFlight--
    app.addHook('preHandler', (request, reply, done) => {
      if (isProbe(request) || request.routeOptions.config.longLived === true) return done()
      if (inFlight >= maxInFlight) return done(overloaded('the service has as many requests under way as it takes on; try again in a moment', 'in_flight'))
      inFlight++
      reply.raw.once('close', ended)
      done()
    })
  }
  const maxEventLoopDelay = app.config.SHED_EVENT_LOOP_DELAY_MS
  if (maxEventLoopDelay === 0) return
  await app.register(underPressure, {
    maxEventLoopDelay,
    pressureHandler: async (request) => {
      if (isProbe(request)) return
      throw overloaded('the service is overloaded; try again in a moment', 'event_loop')
    }
  })
}

export default fp(loadSheddingPlugin, { name: 'load-shedding', fastify: '5.x', dependencies: ['@fastify/env', 'errors'] })
