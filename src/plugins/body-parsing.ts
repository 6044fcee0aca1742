import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { badRequest } from '../lib/problem.js'

/**
 * Text that cannot be stored as it was sent: a lone UTF-16 surrogate (which would become
 * U+FFFD) or NUL (which PostgreSQL's text refuses). Found anywhere in a body, it is a 400
 * naming the field, before any schema or SQL sees it.
 */
const LONE_SURROGATE_OR_NUL = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]|\u0000/
function findBadText(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return LONE_SURROGATE_OR_NUL.test(value) ? path : undefined
  if (value === null || typeof value !== 'object') return undefined
  for (const key in value) {
    if (LONE_SURROGATE_OR_NUL.test(key)) return path ? `${path}.${key}` : key
    const inner = (value as Record<string, unknown>)[key]
    // Only strings and containers can hold text; the field's name is built only then.
    if (inner !== null && (typeof inner === 'string' || typeof inner === 'object')) {
      const found = findBadText(inner, path ? `${path}.${key}` : key)
      if (found !== undefined) return found
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
      const bad = findBadText(parsed, '')
      if (bad !== undefined) {
        const message = 'must be valid Unicode text without NUL characters (no lone surrogates)'
        return done(badRequest('VALIDATION_FAILED', `body${bad ? `.${bad}` : ''} ${message}`, [{ in: 'body', field: bad, message }]), undefined)
      }
      done(null, parsed)
    })
  })
}

export default fp(bodyParsingPlugin, { name: 'body-parsing', fastify: '5.x' })
