import { STATUS_CODES } from 'node:http'
import { Type, type Static, type TSchema } from '@sinclair/typebox'

/**
 * Error responses follow RFC 9457 (`application/problem+json`). `type` is `about:blank`
 * (the status says what kind of problem it is) and `code` is a stable, machine-readable
 * name for the specific case, so clients never have to parse `detail`.
 */
export const ProblemSchema = Type.Object(
  {
    type: Type.String({ examples: ['about:blank'] }),
    title: Type.String({ examples: ['Bad Request'] }),
    status: Type.Integer({ examples: [400] }),
    detail: Type.String(),
    code: Type.String({ description: 'Stable machine-readable error code', examples: ['VALIDATION_FAILED'] }),
    instance: Type.Optional(Type.String({ description: 'The request path' })),
    request_id: Type.Optional(Type.String({ description: "The request's id, as in its X-Request-Id header and the service's log lines: quote it when reporting a problem" })),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          in: Type.String({ description: 'body, querystring, params or headers' }),
          field: Type.String({ description: 'The offending field; empty for the whole part' }),
          message: Type.String()
        }),
        { description: 'For validation failures: one entry per bad field' }
      )
    ),
    more_errors: Type.Optional(Type.Boolean({ description: 'Present (true) when the request has more problems than `errors` lists (at most 10)' })),
    checks: Type.Optional(
      Type.Record(Type.String(), Type.Object({ status: Type.String(), code: Type.Optional(Type.String({ description: 'Why a check fails, as a stable code' })), detail: Type.Optional(Type.String()) }), {
        description: 'For readiness: each check and how it went'
      })
    )
  },
  { $id: 'Problem', title: 'Problem', description: 'RFC 9457 problem details' }
)

export type Problem = Static<typeof ProblemSchema>
export type FieldError = NonNullable<Problem['errors']>[number]

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/** An error that knows how to answer: thrown anywhere, sent by the error handler. */
export class HttpProblem extends Error {
  readonly status: number
  readonly code: string
  readonly errors: FieldError[] | undefined
  readonly checks: Problem['checks']
  readonly moreErrors: boolean | undefined
  readonly retryAfterSeconds: number | undefined
  /** Headers the answer needs besides the problem (`WWW-Authenticate`). */
  readonly headers: Record<string, string> | undefined
  /** Why, for the operators' counters only (`wrong_credentials`): never in the answer. */
  readonly reason: string | undefined

  constructor(
    status: number,
    code: string,
    detail: string,
    extra: { errors?: FieldError[]; moreErrors?: boolean; checks?: Problem['checks']; retryAfterSeconds?: number; headers?: Record<string, string>; reason?: string; cause?: unknown } = {}
  ) {
    super(detail, { cause: extra.cause })
    this.name = 'HttpProblem'
    this.status = status
    this.code = code
    this.errors = extra.errors
    this.checks = extra.checks
    this.moreErrors = extra.moreErrors
    this.retryAfterSeconds = extra.retryAfterSeconds
    this.headers = extra.headers
    this.reason = extra.reason
  }

  toJSON(instance?: string, requestId?: string): Problem {
    const body: Problem = { type: 'about:blank', title: STATUS_CODES[this.status] ?? 'Error', status: this.status, detail: this.message, code: this.code }
    if (instance !== undefined) body.instance = instance
    if (requestId !== undefined) body.request_id = requestId
    if (this.errors !== undefined) body.errors = this.errors
    if (this.moreErrors) body.more_errors = true
    if (this.checks !== undefined) body.checks = this.checks
    return body
  }
}

export const notFound = (detail: string) => new HttpProblem(404, 'NOT_FOUND', detail)

/**
 * Not authenticated (RFC 6750 §3): the same body whatever went wrong (no token, an unknown,
 * expired or revoked one, an unknown email, a wrong password), so an answer tells nobody
 * which; `reason` tells the operators' counters. A request that carried credentials also
 * gets `error="invalid_token"`.
 */
export const unauthenticated = (credentialsSent: boolean, reason: 'missing_token' | 'malformed_token' | 'invalid_token' | 'wrong_credentials' = credentialsSent ? 'invalid_token' : 'missing_token') =>
  new HttpProblem(401, 'UNAUTHENTICATED', 'authentication failed: the token, or the email and password, are missing, wrong, expired or revoked', {
    headers: { 'WWW-Authenticate': credentialsSent ? 'Bearer realm="todos-api", error="invalid_token"' : 'Bearer realm="todos-api"' },
    reason
  })

/** Too many attempts (or requests): retry after `retryAfterSeconds`. */
export const tooManyRequests = (detail: string, retryAfterSeconds: number) => new HttpProblem(429, 'RATE_LIMITED', detail, { retryAfterSeconds: Math.max(1, retryAfterSeconds) })

export const preconditionFailed = (detail: string) => new HttpProblem(412, 'PRECONDITION_FAILED', detail)

export const badRequest = (code: string, detail: string, errors?: FieldError[]) =>
  new HttpProblem(400, code, detail, errors ? { errors } : {})

/** Which limit shed a request (the operators' `todos_api_shed_total`). */
export const SHED_REASONS = ['database_queue', 'database_wait', 'in_flight', 'event_loop'] as const
export type ShedReason = (typeof SHED_REASONS)[number]
/** Shed at once rather than queued (plugins/load-shedding.ts, db/plugin.ts): nothing was done, so a retry is safe. */
export const overloaded = (detail: string, reason: ShedReason) => new HttpProblem(503, 'OVERLOADED', detail, { retryAfterSeconds: 1, reason })

export const databaseUnavailable = (detail = 'the database is not available; try again shortly', cause?: unknown) =>
  new HttpProblem(503, 'DATABASE_UNAVAILABLE', detail, { retryAfterSeconds: 5, cause })

/**
 * A write was sent and no answer came (the database hung or the connection dropped): it
 * may or may not have been applied, and the connection is dropped so it cannot be
 * applied later on our side. Not a 503: retrying blindly could write twice.
 */
export const outcomeUnknown = (cause: unknown) =>
  new HttpProblem(
    504,
    'OUTCOME_UNKNOWN',
    'the database did not confirm the write in time: it may or may not have been applied. Check before repeating it, ' +
      'or repeat it with the same Idempotency-Key, which applies it at most once and answers with its outcome.',
    { cause }
  )

/**
 * The documented error answers of an operation: the statuses it can answer with, plus
 * 400, 413 (a body too large, even where none is expected), 500 and 503, which any can. Each is `application/problem+json`, with the headers
 * it carries.
 */
export function problemResponses(...statuses: number[]) {
  const responses: Record<number, object> = {}
  // Every operation that authenticates can refuse a request without a token on a host
  // that is not this machine (AUTH_MODE=local: accounts/plugin.ts), and a caller past
  // their quota (RATE_LIMIT_PER_MINUTE: accounts/quotas.ts).
  const all = statuses.includes(401) ? [...statuses, 403, 429] : statuses
  for (const status of [...new Set([400, 413, ...all, 500, 503])].sort()) {
    const headers = PROBLEM_HEADERS[status]
    responses[status] = {
      description: PROBLEM_DESCRIPTIONS[status] ?? STATUS_CODES[status] ?? 'Error',
      ...(headers ? { headers: pick(headers) } : {}),
      content: { [PROBLEM_CONTENT_TYPE]: { schema: Type.Ref(ProblemSchema) } }
    }
  }
  return responses
}

/** The response headers the API documents, by name, as @fastify/swagger takes them. */
export const HEADERS = {
  Location: { type: 'string', format: 'uri', description: 'The URL of the item created' },
  ETag: { type: 'string', description: 'The version of the item, for If-Match and If-None-Match' },
  'Cache-Control': { type: 'string', description: 'no-cache (revalidate with If-None-Match) or no-store' },
  Link: { type: 'string', description: 'RFC 8288 `<url>; rel="next"` when more rows match' },
  'X-Total-Count': { type: 'string', description: 'Rows matching the filters, with `count=true`' },
  'Retry-After': { type: 'string', description: 'Seconds after which a retry is worth making' },
  'WWW-Authenticate': { type: 'string', description: 'RFC 6750: `Bearer realm="todos-api"`' },
  'Idempotent-Replayed': { type: 'string', description: '`true` when this is the stored answer to an earlier request with the same Idempotency-Key' }
} as const
export type HeaderName = keyof typeof HEADERS

const pick = (names: readonly HeaderName[]) => Object.fromEntries(names.map((name) => [name, HEADERS[name]]))

/** A documented JSON answer: its schema, a description and the headers it carries. */
export const jsonResponse = <T extends TSchema>(schema: T, description: string, headers: readonly HeaderName[] = []) => ({
  description,
  ...(headers.length > 0 ? { headers: pick(headers) } : {}),
  content: { 'application/json': { schema } }
})

/** A documented answer without a body (204, 304). */
export const emptyResponse = (description: string, headers: readonly HeaderName[] = []) => ({
  type: 'null' as const,
  description,
  ...(headers.length > 0 ? { headers: pick(headers) } : {})
})

const PROBLEM_HEADERS: Record<number, HeaderName[]> = { 401: ['WWW-Authenticate'], 409: ['Retry-After'], 429: ['Retry-After'], 503: ['Retry-After'] }
const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: 'Bad input (nothing is written), or a request that is not valid HTTP (Host)',
  401: 'No valid token',
  403: 'Refused: sign-up closed, the current password needed, or (AUTH_MODE=local) a request without a token to a host other than this machine',
  404: 'Not found (or not yours)',
  409: 'Conflict',
  412: 'If-Match does not match the current version',
  413: 'The body is larger than the operation takes: 1 MiB to create or update an item (past 16 KiB, only with a token already proven valid), 16 KiB anywhere else',
  414: 'A path segment is too long',
  415: 'The body is not JSON',
  422: 'The Idempotency-Key was used for another request',
  429: 'Too many attempts',
  500: 'The service failed (logged)',
  503: 'The database is unavailable or the service is shutting down: retry after Retry-After',
  504: 'OUTCOME_UNKNOWN: the database did not confirm the write; it may or may not have happened'
}
