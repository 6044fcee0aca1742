import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { baseUrl } from '../lib/urls.js'

export interface ServiceInfo {
  name: string
  version: string
  description: string
}

const Link = Type.Object({ href: Type.String(), description: Type.String() })

/** `GET /`: what this service is and where its endpoints are, so it can be explored with curl. */
const rootRoutes: FastifyPluginAsyncTypebox<{ info: ServiceInfo; resources: Array<{ path: string; description: string }> }> = async (app, options) => {
  app.get(
    '/',
    {
      schema: {
        tags: ['service'],
        summary: 'Describe the service and link to its endpoints',
        response: {
          200: Type.Object({ name: Type.String(), version: Type.String(), description: Type.String(), links: Type.Record(Type.String(), Link) })
        }
      }
    },
    async (request) => {
      const base = baseUrl(request, app.config)
      const links: Record<string, { href: string; description: string }> = {
        self: { href: `${base}/`, description: 'This document' },
        docs: { href: `${base}/docs`, description: 'Interactive API reference' },
        openapi: { href: `${base}/docs/json`, description: 'OpenAPI 3.1 document' },
        live: { href: `${base}/health/live`, description: 'Liveness probe' },
        ready: { href: `${base}/health/ready`, description: 'Readiness probe' }
      }
      for (const resource of options.resources) {
        links[resource.path.slice(1)] = { href: `${base}${resource.path}`, description: resource.description }
      }
      return { ...options.info, links }
    }
  )
}

export default rootRoutes
