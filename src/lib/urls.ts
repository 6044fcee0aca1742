import type { FastifyRequest } from 'fastify'
import type { Config } from '../config.js'

/**
 * The absolute base URL clients reach the service at: `PUBLIC_BASE_URL` when set (behind
 * a proxy or under a path prefix), else the scheme and Host of the request itself.
 */
export function baseUrl(request: FastifyRequest, config: Pick<Config, 'PUBLIC_BASE_URL'>): string {
  return config.PUBLIC_BASE_URL ?? `${request.protocol}://${request.host || 'localhost'}`
}
