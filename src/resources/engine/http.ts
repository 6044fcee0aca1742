import { createHash } from 'node:crypto'
import type { FastifyReply, preValidationHookHandler } from 'fastify'
import { badRequest } from '../../lib/problem.js'
import { trimText } from '../../lib/text.js'
import type { Precondition } from './statements.js'

/**
 * ETags are the row version, which the database bumps on every change (the `touch_row`
 * trigger), so a client's ETag names exactly the version it saw.
 */
export const etagFor = (version: number) => `"${version}"`

/**
 * `If-Match` as a precondition for a write (RFC 9110 §13.1.1): `*` means "if it exists";
 * otherwise the strong ETags listed. A weak or malformed tag can never match, so a write
 * that sends only those fails with 412 rather than going through unchecked.
 */
export function parseIfMatch(header: string | undefined): Precondition | undefined {
  if (header === undefined) return undefined
  if (header.trim() === '*') return 'any'
  const versions: number[] = []
  for (const tag of header.split(',')) {
    // Versions are positive int4s written without leading zeros; nothing else can match.
    const match = /^\s*"([1-9]\d{0,9})"\s*$/.exec(tag)
    if (match && Number(match[1]) <= 2147483647) versions.push(Number(match[1]))
  }
  return versions
}

/** `If-None-Match` on a read (§13.1.2): weak comparison, and `*` matches any current version. */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  if (header.trim() === '*') return true
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)
}

/** A key: 1 to 255 visible ASCII characters (what the draft's sf-string allows, quotes aside). */
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/

/** The Idempotency-Key of a request (the draft writes it as a quoted sf-string; bare is accepted too). */
export function idempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined
  const raw = (Array.isArray(header) ? header.join(',') : header).trim()
  const key = raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw
  if (!KEY_PATTERN.test(key)) {
    throw badRequest('INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key must be 1 to 255 visible ASCII characters', [
      { in: 'headers', field: 'idempotency-key', message: 'must be 1 to 255 visible ASCII characters' }
    ])
  }
  return key
}

/** JSON with sorted keys: the same body however its fields are ordered. */
const canonical = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/** What a request is, for telling a retry from a different request under the same key. */
export const fingerprint = (method: string, path: string, body: unknown) => createHash('sha256').update(`${method} ${path}\n${canonical(body)}`).digest()

/**
 * Sends JSON text in the shape the route's response schema describes, which stays the
 * documentation of the answer: items come from the codec with the item schema's
 * properties in its order, so JSON.stringify (native, and cheaper than the schema
 * serializer on a 100-item page) writes exactly the serializer's bytes. Fastify sends a
 * string with a JSON content type as it is; the type provider knows only the parsed
 * shape, hence `never`.
 */
export const sendJsonText = (reply: FastifyReply, json: string) => reply.type('application/json; charset=utf-8').send(json as never)

/** A preValidation hook that trims these text fields of a JSON body (or each text of an array field), so length limits apply to what is stored. */
export const trimBodyFields =
  (fields: readonly string[]): preValidationHookHandler =>
  (request, _reply, done) => {
    const body = request.body
    if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
      for (const field of fields) {
        const value = (body as Record<string, unknown>)[field]
        if (typeof value === 'string') (body as Record<string, unknown>)[field] = trimText(value)
        else if (Array.isArray(value)) (body as Record<string, unknown>)[field] = value.map((element) => (typeof element === 'string' ? trimText(element) : element))
      }
    }
    done()
  }
