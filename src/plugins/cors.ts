import fastifyCors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { corsOrigins } from '../config-meaning.js'

/**
 * Browser clients (the Todo-Backend spec runner, front ends on other origins) may call
 * the API; which origins is `CORS_ORIGINS` (config.ts, corsOrigins). Preflights are answered here, and the headers
 * a client needs for conditional requests and pagination are allowed and exposed.
 */
/** A page served from this machine, on any port. */
const LOOPBACK_ORIGIN = /^https?:\/\/(?:localhost|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\])(?::\d{1,5})?$/

async function corsPlugin(app: FastifyInstance) {
  const origins = corsOrigins(app.config)
  if (origins === false) return

  // Chrome asks before a public page may call a service on localhost or a private
  // network (Private Network Access); say yes wherever CORS already says yes.
  app.addHook('onRequest', (request, reply, done) => {
    if (request.method === 'OPTIONS' && request.headers['access-control-request-private-network'] === 'true') {
      reply.header('Access-Control-Allow-Private-Network', 'true')
    }
    done()
  })

  await app.register(fastifyCors, {
    origin: origins === true ? '*' : origins === 'loopback' ? LOOPBACK_ORIGIN : origins,
    methods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'If-Match', 'If-None-Match'],
    exposedHeaders: ['ETag', 'Location', 'Link', 'X-Total-Count', 'Retry-After', 'WWW-Authenticate', 'Idempotent-Replayed', 'RateLimit', 'RateLimit-Policy'],
    maxAge: 600,
    strictPreflight: false
  })
}

export default fp(corsPlugin, { name: 'cors', fastify: '5.x', dependencies: ['@fastify/env'] })
