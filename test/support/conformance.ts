import Ajv from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifyReply, FastifyRequest } from 'fastify'

/**
 * Checks answers against the service's own OpenAPI document: every answer a test app
 * gives (test/helper.ts records them all) must be a documented status of its operation,
 * with a documented content type, a body that validates against the documented schema,
 * and every header a client acts on documented for that answer. So the document and the
 * wire cannot drift apart unnoticed.
 */
export interface Observed {
  method: string
  /** The route's pattern (`/todos/:id`), or undefined when no route matched (404, 405). */
  route: string | undefined
  status: number
  headers: Record<string, string | string[] | number | undefined>
  body: string
}

/** Headers a client acts on: each one sent must be documented for its response. */
const WATCHED = ['location', 'etag', 'link', 'x-total-count', 'retry-after', 'www-authenticate', 'allow', 'idempotent-replayed', 'cache-control']

interface OpenApiResponse {
  content?: Record<string, { schema: object }>
  headers?: Record<string, { required?: boolean }>
}
interface OpenApiDocument {
  paths: Record<string, Record<string, { responses: Record<string, OpenApiResponse> }>>
  components: { schemas: Record<string, object> }
}

const pointer = (...parts: string[]) => parts.map((part) => part.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')

export function conformanceChecker(document: OpenApiDocument) {
  const ajv = addFormats.default(new Ajv.default({ strict: false, allErrors: true, validateFormats: true }))
  ajv.addSchema({ ...document, $id: 'openapi' })
  const validators = new Map<string, ReturnType<typeof ajv.compile>>()
  const validatorFor = (ref: string) => {
    let validate = validators.get(ref)
    if (validate === undefined) {
      validate = ajv.compile({ $ref: `openapi#/${ref}` })
      validators.set(ref, validate)
    }
    return validate
  }

  return (observed: Observed): string[] => {
    const label = `${observed.method} ${observed.route ?? '(no route)'} → ${observed.status}`
    const problems: string[] = []
    const type = String(observed.headers['content-type'] ?? '').split(';')[0]?.trim() ?? ''
    const path = observed.route?.replace(/:(\w+)/g, '{$1}')
    const operation = path === undefined ? undefined : document.paths[path]?.[observed.method.toLowerCase()]
    if (operation === undefined) {
      // Not an operation of the document (an unknown route, a method the path lacks, the
      // docs' own assets): an error must still be a problem.
      if (observed.status >= 400) {
        if (type !== 'application/problem+json') problems.push(`${label}: content type ${type}, not application/problem+json`)
        else if (!validatorFor(pointer('components', 'schemas', 'Problem'))(JSON.parse(observed.body))) problems.push(`${label}: not a Problem`)
      }
      return problems
    }
    const response = operation.responses[String(observed.status)]
    if (response === undefined) return [`${label}: status ${observed.status} is not documented (${Object.keys(operation.responses).join(', ')})`]
    if (response.content === undefined) {
      if (observed.body !== '') problems.push(`${label}: a body where none is documented`)
    } else if (!(type in response.content)) {
      problems.push(`${label}: content type ${type || '(none)'} is not documented (${Object.keys(response.content).join(', ')})`)
    } else {
      const validate = validatorFor(pointer('paths', path as string, observed.method.toLowerCase(), 'responses', String(observed.status), 'content', type, 'schema'))
      let body: unknown
      try {
        body = JSON.parse(observed.body)
      } catch {
        problems.push(`${label}: the body is not JSON`)
      }
      if (body !== undefined && !validate(body)) problems.push(`${label}: the body does not match the schema: ${ajv.errorsText(validate.errors)}`)
    }
    const documented = new Map(Object.entries(response.headers ?? {}).map(([name, header]) => [name.toLowerCase(), header]))
    for (const name of WATCHED) {
      if (observed.headers[name] !== undefined && !documented.has(name)) problems.push(`${label}: header ${name} is sent but not documented`)
    }
    for (const [name, header] of documented) {
      if (header.required && observed.headers[name] === undefined) problems.push(`${label}: documented header ${name} is missing`)
    }
    return problems
  }
}

/** What the recording hook keeps of an answer. */
export const observe = (request: FastifyRequest, reply: FastifyReply, payload: unknown): Observed => ({
  method: request.method,
  route: request.is404 ? undefined : request.routeOptions.url,
  status: reply.statusCode,
  headers: reply.getHeaders(),
  body: typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : payload === null || payload === undefined ? '' : '(stream)'
})
