import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { AnyResource } from '../crud/definition.js'
import { jsonResponse, problemResponses } from '../lib/problem.js'
import { capitalise } from '../lib/schema.js'
import { baseUrl } from '../lib/urls.js'

export interface ServiceInfo {
  name: string
  version: string
  description: string
}

const Link = Type.Object({ href: Type.String(), description: Type.String() })

/** `GET /`: what this service is and where its endpoints are, so it can be explored with curl. */
const rootRoutes: FastifyPluginAsyncTypebox<{ info: ServiceInfo; resources: readonly AnyResource[] }> = async (app, options) => {
  const paths: Array<[name: string, path: string, description: string]> = [
    ['self', '/', 'This document'],
    ['docs', '/docs', 'Interactive API reference'],
    ['openapi', '/docs/json', 'OpenAPI 3.1 document'],
    ['live', '/health/live', 'Liveness probe'],
    ['ready', '/health/ready', 'Readiness probe'],
    ...options.resources.map((resource): [string, string, string] => [resource.plural, resource.path, `${capitalise(resource.plural)}: list, create, read, update, delete`])
  ]
  app.get(
    '/',
    {
      schema: {
        tags: ['service'],
        summary: 'Describe the service and link to its endpoints',
        response: {
          200: jsonResponse(
            Type.Object({ name: Type.String(), version: Type.String(), description: Type.String(), links: Type.Record(Type.String(), Link) }),
            'The service and its links'
          ),
          ...problemResponses()
        }
      }
    },
    async (request) => {
      const base = baseUrl(request, app.config.PUBLIC_BASE_URL)
      const links: Record<string, { href: string; description: string }> = {}
      for (const [name, path, description] of paths) links[name] = { href: `${base}${path}`, description }
      return { ...options.info, links }
    }
  )
}

export default rootRoutes
