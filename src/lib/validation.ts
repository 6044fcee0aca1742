import Ajv, { type Options } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify'

const shared: Options = { useDefaults: true, removeAdditional: false, allErrors: true, strict: false }

/**
 * JSON bodies are typed strictly: `"true"` is not a boolean and `"5000"` is not a price.
 * Query strings, path parameters and headers are text by nature, so those are coerced.
 * Unknown body fields are rejected (never silently dropped) so a typo is a 400, not a
 * field that quietly did nothing.
 */
const bodyAjv = addFormats.default(new Ajv.default({ ...shared, coerceTypes: false }))
const textAjv = addFormats.default(new Ajv.default({ ...shared, coerceTypes: 'array' }))

export const httpValidatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object)

/**
 * Bodies are JSON or JSON Merge Patch (RFC 7396); anything else, text/plain included
 * (which Fastify parses by default), is a 415 rather than a confusing schema error. An empty body with a JSON content type is
 * read as no body: browsers' XHR helpers (jQuery, as the Todo-Backend spec runner uses)
 * send `Content-Type: application/json` on bodiless DELETEs; a route that needs a body
 * still rejects it through its schema.
 */
export function registerBodyParsers(app: FastifyInstance) {
  app.removeContentTypeParser('text/plain')
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser(['application/json', 'application/merge-patch+json'], { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined)
    parseJson(request, body as string, done)
  })
}
