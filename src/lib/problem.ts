import { STATUS_CODES } from 'node:http'
import { Type, type Static } from '@sinclair/typebox'

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
    checks: Type.Optional(Type.Record(Type.String(), Type.Object({ status: Type.String(), detail: Type.Optional(Type.String()) })))
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
  readonly retryAfterSeconds: number | undefined
  /** Headers the answer needs besides the problem (`WWW-Authenticate`). */
  readonly headers: Record<string, string> | undefined

  constructor(
    status: number,
    code: string,
    detail: string,
    extra: { errors?: FieldError[]; checks?: Problem['checks']; retryAfterSeconds?: number; headers?: Record<string, string>; cause?: unknown } = {}
  ) {
    super(detail, { cause: extra.cause })
    this.name = 'HttpProblem'
    this.status = status
    this.code = code
    this.errors = extra.errors
    this.checks = extra.checks
    this.retryAfterSeconds = extra.retryAfterSeconds
    this.headers = extra.headers
  }

  toJSON(instance?: string): Problem {
    const body: Problem = { type: 'about:blank', title: STATUS_CODES[this.status] ?? 'Error', status: this.status, detail: this.message, code: this.code }
    if (instance !== undefined) body.instance = instance
    if (this.errors !== undefined) body.errors = this.errors
    if (this.checks !== undefined) body.checks = this.checks
    return body
  }
}

export const notFound = (detail: string) => new HttpProblem(404, 'NOT_FOUND', detail)

/**
 * Not authenticated (RFC 6750 §3): the same body whatever went wrong (no token, an unknown,
 * expired or revoked one, an unknown email, a wrong password), so an answer tells nobody
 * which. A request that carried credentials also gets `error="invalid_token"`.
 */
export const unauthenticated = (credentialsSent: boolean) =>
  new HttpProblem(401, 'UNAUTHENTICATED', 'authentication failed: the token, or the email and password, are missing, wrong, expired or revoked', {
    headers: { 'WWW-Authenticate': credentialsSent ? 'Bearer realm="todos-api", error="invalid_token"' : 'Bearer realm="todos-api"' }
  })

export const preconditionFailed = (detail: string) => new HttpProblem(412, 'PRECONDITION_FAILED', detail)

export const badRequest = (code: string, detail: string, errors?: FieldError[]) =>
  new HttpProblem(400, code, detail, errors ? { errors } : {})

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

/** Response schemas for the error statuses a route can answer with, plus 500 and 503. */
export function problemResponses(...statuses: number[]) {
  const responses: Record<number, typeof ProblemSchema> = {}
  for (const status of [...statuses, 500, 503]) responses[status] = Type.Ref(ProblemSchema) as unknown as typeof ProblemSchema
  return responses
}
