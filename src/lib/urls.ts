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
 * The Host (or a trusted X-Forwarded-Host) must be what RFC 9110 and RFC 3986 allow there,
 * `host[:port]`, since it ends up in the URLs the API returns (`url`, `Location`, `Link`,
 * answers stored for Idempotency-Key): a name of letters, digits, `-`, `.` and `_` (an IPv4
 * address included), or an IPv6 literal in brackets, and a port from 0 to 65535. Anything
 * else (`evil.example/phish?`, `a b`, `x:99999`) is a 400 before anything is written. One
 * linear pass, no URL parsing per request.
 */
export function checkHost(request: FastifyRequest): void {
  const { host, protocol } = request
  // A trusted X-Forwarded-Proto is the other half of the URLs.
  if (protocol !== 'http' && protocol !== 'https') throw badRequest('INVALID_PROTO', 'X-Forwarded-Proto must be http or https')
  if (host && !isHostAndPort(host)) throw badRequest('INVALID_HOST', 'the Host header must be a host name or address, with an optional port')
}

const HOST = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::([0-9]{1,5}))?$/
export function isHostAndPort(text: string): boolean {
  const match = HOST.exec(text)
  return match !== null && (match[1] === undefined || Number(match[1]) <= 65535)
}

/** `url` with its query parameter `name` set to `value`, without re-parsing the rest. */
export function withQueryParameter(base: string, url: string, name: string, value: string): string {
  const [path = '', search = ''] = url.split('?', 2)
  const params = new URLSearchParams(search)
  params.set(name, value)
  return `${base}${path}?${params.toString()}`
}
