import type { FastifyRequest } from 'fastify'
import { badRequest } from './problem.js'

/**
 * The absolute base URL clients reach the service at: `PUBLIC_BASE_URL` when set (behind
 * a proxy or under a path prefix), else the scheme and Host of the request itself (the
 * X-Forwarded-* ones with TRUST_PROXY), checked by `checkHost` when the request arrived.
 */
export function baseUrl(request: FastifyRequest, publicBaseUrl: string | undefined): string {
  return publicBaseUrl ?? `${request.protocol}://${request.host || 'localhost'}`
}

/**
 * A Host that is not a host name (`a b`, `x:99999`) would end up in the URLs the API
 * returns; RFC 9112 says to answer 400, and it is answered before anything is written.
 */
export function checkHost(request: FastifyRequest): void {
  if (!request.host) return
  const origin = `${request.protocol}://${request.host}`
  // A service sees a handful of Host values; parsing a URL for each request is not free.
  if (validOrigins.has(origin)) return
  try {
    new URL(origin)
  } catch {
    throw badRequest('INVALID_HOST', 'the Host header is not a valid host name and port')
  }
  if (validOrigins.size >= MAX_REMEMBERED) validOrigins.clear()
  validOrigins.add(origin)
}

const validOrigins = new Set<string>()
const MAX_REMEMBERED = 1000

/** `url` with its query parameter `name` set to `value`, without re-parsing the rest. */
export function withQueryParameter(base: string, url: string, name: string, value: string): string {
  const [path = '', search = ''] = url.split('?', 2)
  const params = new URLSearchParams(search)
  params.set(name, value)
  return `${base}${path}?${params.toString()}`
}
