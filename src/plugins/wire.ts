import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import { HttpProblem, PROBLEM_CONTENT_TYPE } from '../lib/problem.js'
import { sendProblem } from './errors.js'

/**
 * Answers for requests that never reach a route, so that every 4xx and 5xx the process
 * writes is problem+json: malformed requests Node's HTTP parser rejects (400, 431 for
 * oversized headers, 408 for a request that took too long), URLs the router cannot
 * decode (400) or whose parameter is too long (414), a path that exists with another
 * method (405 with `Allow`), and an HTTP/1.1 request without `Host` (400).
 */

/** For Fastify's `clientErrorHandler`: the parser's errors, written straight to the socket. */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const [status, code, detail] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'REQUEST_TIMEOUT', 'the request was not received in time']
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'HEADERS_TOO_LARGE', 'the request line and headers are too large']
        : [400, 'MALFORMED_REQUEST', 'the request is not valid HTTP/1.1']
  const body = JSON.stringify({ type: 'about:blank', title: STATUS_CODES[status], status, detail, code })
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
    )
  }
  socket.destroy()
}

/** For Fastify's `frameworkErrors`: what the router cannot route. */
export const frameworkErrors: NonNullable<FastifyServerOptions['frameworkErrors']> = (error, request, reply) => {
  const problem =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new HttpProblem(414, 'URI_TOO_LONG', 'a path segment is too long')
      : error.code === 'FST_ERR_BAD_URL'
        ? new HttpProblem(400, 'BAD_URL', 'the URL is not valid (a malformed percent-encoding?)')
        : new HttpProblem(500, 'INTERNAL_ERROR', 'the server failed to handle the request; it has been logged')
  void sendProblem(request, reply as FastifyReply, problem)
}

/** A route's path as a pattern (`/todos/:id`), for matching request paths against it. */
const toPattern = (path: string) => new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z_]\w*/g, '[^/]+')}/?$`)

async function wirePlugin(app: FastifyInstance) {
  const routes = new Map<string, { pattern: RegExp; methods: Set<string> }>()
  app.addHook('onRoute', (route) => {
    if (route.url.includes('*')) return // wildcards (docs assets, CORS preflight) answer every path
    const entry = routes.get(route.url) ?? { pattern: toPattern(route.url), methods: new Set<string>() }
    for (const method of [route.method].flat()) entry.methods.add(method)
    routes.set(route.url, entry)
  })

  // RFC 9110 §9.1: a method the path does not support is a 405 naming the ones it does.
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/'
    const allowed = new Set<string>()
    for (const { pattern, methods } of routes.values()) if (pattern.test(path)) for (const method of methods) allowed.add(method)
    if (allowed.size > 0) {
      const allow = [...allowed].sort().join(', ')
      reply.header('Allow', allow)
      return sendProblem(request, reply, new HttpProblem(405, 'METHOD_NOT_ALLOWED', `${request.method} is not supported on ${path}; it supports ${allow}`))
    }
    return sendProblem(request, reply, new HttpProblem(404, 'ROUTE_NOT_FOUND', `no route for ${request.method} ${path}`))
  })

  // Node answers a missing Host itself, with an empty 400, unless told not to
  // (requireHostHeader: false, app.ts); it is answered here instead.
  app.addHook('onRequest', (request: FastifyRequest, _reply, done) => {
    if (request.raw.httpVersionMajor === 1 && request.raw.httpVersionMinor === 1 && request.headers.host === undefined) {
      return done(new HttpProblem(400, 'MISSING_HOST', 'an HTTP/1.1 request needs a Host header'))
    }
    done()
  })
}

export default fp(wirePlugin, { name: 'wire', fastify: '5.x', dependencies: ['errors'] })
