import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { withCredit, type TimingCredit } from '../lib/server-timing.js'

class RequestTiming implements TimingCredit {
  database = 0
  addDatabase(ms: number) {
    this.database += ms
  }
}

/**
 * SERVER_TIMING=true: every answer says where its time went, `Server-Timing: db;dur=…,
 * total;dur=…` (milliseconds), which browsers' devtools show beside the request. `db` is
 * the time its statements ran, a batched statement's whole time credited to each request
 * it served (resources/engine/batching.ts). Off by default: it tells anyone who can send
 * a request how long the database takes.
 */
async function serverTimingPlugin(app: FastifyInstance) {
  if (!app.config.SERVER_TIMING) return
  const timings = new WeakMap<object, RequestTiming>()
  app.addHook('onRequest', (request, _reply, done) => {
    const timing = new RequestTiming()
    timings.set(request, timing)
    withCredit(timing, done)
  })
  app.addHook('onSend', (request, reply, payload, done) => {
    const timing = timings.get(request)
    if (timing !== undefined) reply.header('server-timing', `db;dur=${timing.database.toFixed(1)}, total;dur=${reply.elapsedTime.toFixed(1)}`)
    done(null, payload)
  })
}

export default fp(serverTimingPlugin, { name: 'server-timing', fastify: '5.x', dependencies: ['@fastify/env'] })
