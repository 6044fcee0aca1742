import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import fp from 'fastify-plugin'
import { jsonResponse, problemResponses } from '../lib/problem.js'
import { capitalise } from '../lib/schema.js'
import { baseUrl } from '../lib/urls.js'

/** What the docs and the root document say of the service. */
export interface ServiceInfo {
  name: string
  version: string
  description: string
}

/** What they say of each resource (its definition has these). */
type Described = { plural: string; path: string; description: string }

const Link = Type.Object({ href: Type.String(), description: Type.String() })

/**
 * OpenAPI 3.1, generated from the route schemas (so it cannot drift from what the routes
 * validate), at `/docs/json`; Swagger UI at `/docs`, whose assets ship inside
 * @fastify/swagger-ui and are served from here (the docs work offline); and `GET /`, what
 * this service is and where its endpoints are, so it can be explored with curl.
 */
const docsPlugin: FastifyPluginAsyncTypebox<{ info: ServiceInfo; resources: readonly Described[] }> = async (app, { info, resources }) => {
  const names = resources.map((resource) => capitalise(resource.plural)).join(', ')
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'todos-api',
        version: info.version,
        description:
          `${names} over JSON. Errors are RFC 9457 \`application/problem+json\`. Lists are plain arrays paginated ` +
          'with an opaque `cursor` and an RFC 8288 `Link: <...>; rel="next"` header. Items carry an `ETag`; send it back ' +
          'in `If-Match` to update or delete only the version you saw (412 otherwise), or in `If-None-Match` to get 304. ' +
          `${names} and accounts are per user: send \`Authorization: Bearer <token>\` (get one from \`POST /tokens\`; ` +
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
        ...resources.map((resource) => ({ name: resource.plural, description: resource.description })),
        { name: 'sync', description: 'What changed since a cursor, for clients that keep a copy' },
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

  const paths: Array<[name: string, path: string, description: string]> = [
    ['self', '/', 'This document'],
    ['docs', '/docs', 'Interactive API reference'],
    ['openapi', '/docs/json', 'OpenAPI 3.1 document'],
    ['live', '/health/live', 'Liveness probe'],
    ['ready', '/health/ready', 'Readiness probe'],
    ...resources.map((resource): [string, string, string] => [resource.plural, resource.path, `${capitalise(resource.plural)}: list, create, read, update, delete`])
  ]
  app.get(
    '/',
    {
      schema: {
        tags: ['service'],
        summary: 'Describe the service and link to its endpoints',
        response: {
          200: jsonResponse(Type.Object({ name: Type.String(), version: Type.String(), description: Type.String(), links: Type.Record(Type.String(), Link) }), 'The service and its links'),
          ...problemResponses()
        }
      }
    },
    async (request) => {
      const base = baseUrl(request, app.config.PUBLIC_BASE_URL)
      const links: Record<string, { href: string; description: string }> = {}
      for (const [name, path, description] of paths) links[name] = { href: `${base}${path}`, description }
      return { ...info, links }
    }
  )
}

export default fp(docsPlugin, { name: 'docs', fastify: '5.x' })
