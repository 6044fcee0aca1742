import fastifyHelmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { checkHost } from '../lib/urls.js'

/**
 * Response headers that protect browsers (helmet), HSTS over HTTPS only, and the Host
 * check that keeps a malformed Host out of the URLs the API returns.
 */
async function securityPlugin(app: FastifyInstance) {
  // With PUBLIC_BASE_URL set, the request's Host never reaches a URL we return.
  if (!app.config.PUBLIC_BASE_URL) app.addHook('onRequest', async (request) => checkHost(request))

  await app.register(fastifyHelmet, {
    // A JSON API and one documentation page, all served from here: nothing else is trusted.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"]
      }
    },
    // Responses are read by other origins through CORS; CORP same-origin would block them.
    crossOriginResourcePolicy: { policy: 'cross-origin' },
    // Sent only over HTTPS, below.
    strictTransportSecurity: false
  })

  // HSTS means something only over HTTPS (RFC 6797 §7.2: not sent on plain HTTP);
  // behind a TLS-terminating proxy, TRUST_PROXY makes X-Forwarded-Proto count.
  app.addHook('onSend', async (request, reply) => {
    if (request.protocol === 'https') reply.header('Strict-Transport-Security', 'max-age=31536000; includeSubDomains')
  })
}

export default fp(securityPlugin, { name: 'security', fastify: '5.x', dependencies: ['@fastify/env'] })
