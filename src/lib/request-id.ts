import { randomUUID } from 'node:crypto'

/** The longest X-Request-Id taken from a client or a proxy; a longer one is replaced. */
export const MAX_REQUEST_ID_LENGTH = 128
// Letters, digits and the punctuation of UUIDs, nginx's hex ids, ULIDs and dotted or
// base64 ids: nothing that could break a log line, a header or a shell. Linear: a
// character class, anchored, on at most MAX_REQUEST_ID_LENGTH characters.
const SAFE_ID = /^[A-Za-z0-9._:@/+=-]+$/

/** The id of a request: the incoming X-Request-Id when it is well-formed, else a new UUID. */
export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && header.length <= MAX_REQUEST_ID_LENGTH && SAFE_ID.test(header) ? header : randomUUID()
}

// W3C Trace Context, version 00 (and later versions' first four fields, as the spec asks).
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})/
const ZERO_TRACE = '0'.repeat(32)
const ZERO_SPAN = '0'.repeat(16)

/** The trace id of a valid `traceparent`, or undefined (the header is then ignored). */
export function traceIdFrom(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string' || header.length < 55 || header.length > 512) return undefined
  const match = TRACEPARENT.exec(header)
  if (match === null) return undefined
  const [, version, traceId, spanId] = match as unknown as [string, string, string, string]
  if (version === 'ff' || traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined
  if (version === '00' ? header.length !== 55 : header.length > 55 && header[55] !== '-') return undefined
  return traceId
}
