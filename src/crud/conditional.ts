import type { Precondition } from './repository.js'

/**
 * ETags are the row version, which the database bumps on every change (see the
 * `touch_row` trigger), so a client's ETag names exactly the version it saw.
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
