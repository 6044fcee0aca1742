import { isIP } from 'node:net'

/*
 * What some settings mean once combined with others: read by the plugins that apply them,
 * and by config.ts, which refuses a value none of them can read.
 */

/**
 * The origins allowed to call the API from a browser: `true` for any origin, a list,
 * 'loopback' for pages served from this machine (http://localhost:5173...), or `false`
 * for none. Unset means none in production; with AUTH_MODE=local, where a request
 * without a token acts as the local user, pages on this machine only, so that a page of
 * any site the developer visits cannot read or change the local user's data; otherwise
 * any origin (every request needs a token then, which a page cannot borrow).
 */
export function corsOrigins(config: { CORS_ORIGINS?: string | undefined; NODE_ENV: string; AUTH_MODE: string }): true | false | 'loopback' | string[] {
  const raw = config.CORS_ORIGINS?.trim()
  if (raw === undefined || raw === '') return config.NODE_ENV === 'production' ? false : config.AUTH_MODE === 'local' ? 'loopback' : true
  if (raw === '*') return true
  if (raw === 'none') return false
  return raw
    .split(',')
    .map((origin) => origin.trim())
    .filter((origin) => origin !== '')
}

/**
 * Fastify's `trustProxy` from TRUST_PROXY: `true` trusts every X-Forwarded-For hop (the
 * left-most address wins: only behind a proxy that overwrites the header, as the bundled
 * nginx does), a number trusts that many proxies in front (the address the last trusted
 * one saw), a list trusts those addresses and CIDRs. Undefined when the text is none of
 * these.
 */
export function trustProxy(config: { TRUST_PROXY?: string | undefined }): boolean | number | string[] | undefined {
  const raw = (config.TRUST_PROXY ?? 'false').trim()
  if (raw === 'true' || raw === 'false') return raw === 'true'
  if (/^\d{1,3}$/.test(raw)) return Number(raw)
  const entries = raw.split(',').map((entry) => entry.trim())
  return entries.length > 0 && entries.every(isProxyEntry) ? entries : undefined
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])
function isProxyEntry(entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true
  const [address = '', bits, ...rest] = entry.split('/')
  const version = isIP(address)
  if (version === 0 || rest.length > 0) return false
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (version === 4 ? 32 : 128))
}

/** Whether anyone may sign up (`POST /users`): `SIGNUP`, or by default open except in production. */
export const signupOpen = (config: { SIGNUP?: 'open' | 'closed' | undefined; NODE_ENV: string }): boolean => (config.SIGNUP ?? (config.NODE_ENV === 'production' ? 'closed' : 'open')) === 'open'
