import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

/**
 * Security headers, helmet's, worked out once at start-up rather than by running helmet
 * on every request. JSON answers (every API answer) get what OWASP's REST Security Cheat
 * Sheet lists for an API and no more: a CSP that allows nothing, `nosniff` and
 * `X-Frame-Options: DENY`; the headers that only mean something to a page a browser
 * renders cost every answer their bytes for nothing (docs/request-path.md says which and
 * why). The /docs page gets helmet's full set, with a CSP that allows only this origin.
 * HSTS goes on every answer over HTTPS and never over plain HTTP (RFC 6797 §7.2).
 */
const PAGE_POLICY: HelmetOptions = {
  // A documentation page served from here: nothing else is trusted.
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
  crossOriginResourcePolicy: { policy: 'cross-origin' },
  strictTransportSecurity: false
}

const API_POLICY: HelmetOptions = {
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  xFrameOptions: { action: 'deny' },
  crossOriginResourcePolicy: false,
  referrerPolicy: false,
  crossOriginOpenerPolicy: false,
  originAgentCluster: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
  strictTransportSecurity: false
}

const HSTS = 'max-age=31536000; includeSubDomains'

/** The headers helmet would set with `options`, captured once. */
export function helmetHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {}
  const response = {
    setHeader: (name: string, value: string | number | readonly string[]) => {
      headers[name] = String(value)
    },
    removeHeader: () => {}
  }
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, () => {})
  return headers
}

async function securityPlugin(app: FastifyInstance) {
  const api = helmetHeaders(API_POLICY)
  const page = helmetHeaders(PAGE_POLICY)
  app.addHook('onSend', (request, reply, payload, done) => {
    const type = reply.getHeader('content-type')
    reply.headers(typeof type === 'string' && type.startsWith('text/html') ? page : api)
    if (request.protocol === 'https') reply.header('Strict-Transport-Security', HSTS)
    done(null, payload)
  })
}

export default fp(securityPlugin, { name: 'security', fastify: '5.x', dependencies: ['@fastify/env'] })
