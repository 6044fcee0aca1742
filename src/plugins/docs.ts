import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { AnyResource } from '../crud/definition.js'

/**
 * OpenAPI 3.1, generated from the route schemas (so it cannot drift from what the routes
 * validate), at `/docs/json`, and Swagger UI at `/docs`. The UI's assets ship inside
 * @fastify/swagger-ui and are served from here: the docs work offline.
 */
async function docsPlugin(app: FastifyInstance, options: { version: string; resources: readonly AnyResource[] }) {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'todos-api',
        version: options.version,
        description:
          'Todos and cats over JSON. Errors are RFC 9457 `application/problem+json`. Lists are plain arrays paginated ' +
          'with an opaque `cursor` and an RFC 8288 `Link: <...>; rel="next"` header. Items carry an `ETag`; send it back ' +
          'in `If-Match` to update or delete only the version you saw (412 otherwise), or in `If-None-Match` to get 304. ' +
          'Todos, cats and accounts are per user: send `Authorization: Bearer <token>` (get one from `POST /tokens`; ' +
          '"Authorize" above takes it). Any path answers 405 (with `Allow`) for a method it does not support, and any ' +
          'request can be refused before it reaches an operation: 400 (not valid HTTP), 408 (not received within ' +
          'REQUEST_TIMEOUT_MS), 431 (headers too large), all as problem+json.'
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'A token from `POST /tokens` (or `make user`), e.g. `tapi_...`' }
        }
      },
      tags: [
        ...options.resources.map((resource) => ({ name: resource.plural, description: resource.description })),
        { name: 'accounts', description: 'Sign-up, tokens and your account' },
        { name: 'health', description: 'Liveness and readiness probes' },
        { name: 'service', description: 'About the service' }
      ]
    },
    refResolver: {
      // Shared schemas appear in the document under their own names (Problem, ...).
      buildLocalReference: (json, _baseUri, _fragment, index) => (typeof json.$id === 'string' ? json.$id : `def-${index}`)
    }
  })
  await app.register(fastifySwaggerUi, {
    routePrefix: '/docs',
    uiConfig: { deepLinking: true, docExpansion: 'list', validatorUrl: null, tryItOutEnabled: true },
    staticCSP: false
  })
}

export default fp(docsPlugin, { name: 'docs', fastify: '5.x' })
