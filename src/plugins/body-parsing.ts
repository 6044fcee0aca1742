import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { badRequest } from '../lib/problem.js'

/**
 * Text that cannot be stored as it was sent: a lone UTF-16 surrogate (which would become
 * U+FFFD) or NUL (which PostgreSQL's text refuses). Found anywhere in a body, it is a 400
 * naming the field, before any schema or SQL sees it.
 */
const LONE_SURROGATE_OR_NUL = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]|\u0000/
/**
 * A walk with a stack of its own (a body nests as deep as its size allows, deeper than the
 * call stack goes) that names the field only once it has found one: linear in the body.
 */
function findBadText(body: unknown): string | undefined {
  if (typeof body === 'string') return LONE_SURROGATE_OR_NUL.test(body) ? '' : undefined
  type Place = { value: object; key: string | undefined; parent: Place | undefined }
  const pathOf = (place: Place | undefined, key: string) => {
    const keys = [key]
    for (let at = place; at?.key !== undefined; at = at.parent) keys.push(at.key)
    return keys.reverse().join('.')
  }
  if (body === null || typeof body !== 'object') return undefined
  const stack: Place[] = [{ value: body, key: undefined, parent: undefined }]
  while (stack.length > 0) {
    const place = stack.pop() as Place
    for (const key in place.value) {
      if (LONE_SURROGATE_OR_NUL.test(key)) return pathOf(place, key)
      const inner = (place.value as Record<string, unknown>)[key]
      if (typeof inner === 'string' && LONE_SURROGATE_OR_NUL.test(inner)) return pathOf(place, key)
      if (inner !== null && typeof inner === 'object') stack.push({ value: inner, key, parent: place })
    }
  }
  return undefined
}

/**
 * Bodies are JSON or JSON Merge Patch (RFC 7396); anything else, text/plain included
 * (which Fastify parses by default), is a 415 rather than a confusing schema error. An empty body with a JSON content type is
 * read as no body: browsers' XHR helpers (jQuery, as the Todo-Backend spec runner uses)
 * send `Content-Type: application/json` on bodiless DELETEs; a route that needs a body
 * still rejects it through its schema.
 */
async function bodyParsingPlugin(app: FastifyInstance) {
  app.removeContentTypeParser('text/plain')
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser(['application/json', 'application/merge-patch+json'], { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined)
    parseJson(request, body as string, (error, parsed) => {
      if (error) return done(error, undefined)
      const bad = findBadText(parsed)
      if (bad !== undefined) {
        const message = 'must be valid Unicode text without NUL characters (no lone surrogates)'
        return done(badRequest('VALIDATION_FAILED', `body${bad ? `.${bad}` : ''} ${message}`, [{ in: 'body', field: bad, message }]), undefined)
      }
      done(null, parsed)
    })
  })
}

export default fp(bodyParsingPlugin, { name: 'body-parsing', fastify: '5.x' })
