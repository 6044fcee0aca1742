import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Every answer names its request: `X-Request-Id` is the id Fastify's `genReqId` gave it
 * (app.ts: the client's or the proxy's when well-formed, else a new one), the same id as
 * in the request's log lines and in a problem's `request_id`. Registered before any
 * plugin that may answer early (a closing server's 503, the HTTP guards).
 */
async function requestIdPlugin(app: FastifyInstance) {
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })
}

export default fp(requestIdPlugin, { name: 'request-id', fastify: '5.x' })
