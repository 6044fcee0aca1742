import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import pg from 'pg'
import { databaseProblem, isConnectionFailure } from '../db/errors.js'
import { PATTERN_MESSAGES } from '../lib/schema.js'
import type {} from '../lib/metrics.js'
import { MORE_ERRORS } from '../lib/validation.js'
import { HttpProblem, PROBLEM_CONTENT_TYPE, ProblemSchema, databaseUnavailable, type FieldError } from '../lib/problem.js'

/**
 * Every error leaves as `application/problem+json`: validation failures with one entry per
 * bad field, PostgreSQL errors mapped to the status that describes them, unknown routes as
 * 404. Nothing else reaches the client: no stack, no SQL, no connection details.
 */
async function errorsPlugin(app: FastifyInstance) {
  app.addSchema(ProblemSchema)

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const problem = toProblem(error)
    if (problem.status === 500) {
      request.log.error({ err: error, code: problem.code }, 'request failed')
      // Stacks stay out of the normal log; at debug level they help find the cause.
      request.log.debug({ stack: error.stack }, 'stack of the failed request')
    } else if (problem.status >= 500) {
      request.log.warn({ err: error.cause ?? error, code: problem.code, reason: problem.reason }, problem.message)
    } else {
      request.log.info({ code: problem.code, status: problem.status }, problem.message)
    }
    return sendProblem(request, reply, problem)
  })

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
}

/** A route's path as a pattern (`/todos/:id`), for matching request paths against it. */
const toPattern = (path: string) => new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z_]\w*/g, '[^/]+')}/?$`)

export function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: HttpProblem) {
  request.server.metrics?.track(reply)
  request.server.metrics?.countProblem(problem, request.routeOptions.url)
  if (problem.retryAfterSeconds !== undefined) reply.header('Retry-After', String(problem.retryAfterSeconds))
  if (problem.headers !== undefined) reply.headers(problem.headers)
  // Also for answers no onRequest hook ran for (the router's own errors).
  reply.header('x-request-id', request.id)
  // The validator and serializer of the route do not apply to a problem: send it as text.
  return reply
    .code(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .serializer(JSON.stringify)
    .send(problem.toJSON(request.url.split('?')[0], request.id))
}

export function toProblem(error: FastifyError): HttpProblem {
  if (error instanceof HttpProblem) return error
  if (error.validation) return validationProblem(error)
  if (error instanceof pg.DatabaseError) return databaseProblem(error)
  if (isConnectionFailure(error)) return databaseUnavailable(undefined, error)
  const status = error.statusCode ?? 500
  if (status >= 400 && status < 500) {
    // Fastify's own client errors (bad JSON, wrong media type, body too large) carry a
    // safe message; anything else is ours to hide.
    return new HttpProblem(status, error.code?.replace(/^FST_ERR_/, '') ?? 'BAD_REQUEST', error.message)
  }
  return new HttpProblem(500, 'INTERNAL_ERROR', 'the server failed to handle the request; it has been logged')
}

/** When one field breaks several rules, the most basic one is the one worth reading. */
const FIRST_WORTH_READING = ['required', 'additionalProperties', 'type', 'format', 'enum']
const rank = (keyword: string) => {
  const index = FIRST_WORTH_READING.indexOf(keyword)
  return index === -1 ? FIRST_WORTH_READING.length : index
}

function validationProblem(error: FastifyError): HttpProblem {
  const part = error.validationContext ?? 'body'
  const byField = new Map<string, { rank: number; entry: FieldError }>()
  let more = false
  for (const issue of error.validation ?? []) {
    if (issue.keyword === MORE_ERRORS) {
      more = true
      continue
    }
    const entry = describeValidationIssue(part, issue)
    const seen = byField.get(entry.field)
    if (seen === undefined || rank(issue.keyword) < seen.rank) byField.set(entry.field, { rank: rank(issue.keyword), entry })
  }
  const errors = [...byField.values()].map(({ entry }) => entry)
  const detail = errors.map((entry) => `${entry.in}${entry.field ? `.${entry.field}` : ''} ${entry.message}`).join('; ')
  return new HttpProblem(400, 'VALIDATION_FAILED', more ? `${detail}; and more problems, not listed` : detail, { errors, ...(more ? { moreErrors: true } : {}) })
}

function describeValidationIssue(part: string, issue: NonNullable<FastifyError['validation']>[number]): FieldError {
  const params = issue.params as Record<string, unknown>
  const path = shorten(issue.instancePath.split('/').slice(1).join('.'))
  if (issue.keyword === 'required') return { in: part, field: joinField(path, String(params.missingProperty)), message: 'is required' }
  if (issue.keyword === 'additionalProperties') {
    return { in: part, field: joinField(path, String(params.additionalProperty)), message: 'is not a known field' }
  }
  const patternMessage = issue.keyword === 'pattern' ? PATTERN_MESSAGES[String(params.pattern)] : undefined
  if (patternMessage) return { in: part, field: path, message: patternMessage }
  if (issue.keyword === 'format' && params.format === 'date-time') {
    return { in: part, field: path, message: 'must be an RFC 3339 date-time with a time zone, from 1000-01-01 to 9999-12-31 UTC, seconds 00–59' }
  }
  if (issue.keyword === 'enum') return { in: part, field: path, message: `must be one of: ${(params.allowedValues as unknown[]).join(', ')}` }
  return { in: part, field: path, message: issue.message ?? 'is invalid' }
}

/** A field's name as the answer gives it: a client's own key, cut short, so an answer never echoes a huge one. */
const joinField = (path: string, name: string) => shorten(path ? `${path}.${name}` : name)
const FIELD_NAME_LIMIT = 100
const shorten = (field: string) => (field.length > FIELD_NAME_LIMIT ? `${field.slice(0, FIELD_NAME_LIMIT)}…` : field)

export default fp(errorsPlugin, { name: 'errors', fastify: '5.x' })
