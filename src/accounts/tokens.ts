import { createHash, randomBytes } from 'node:crypto'

/**
 * API tokens: `tapi_` and 43 base64url characters (256 random bits). The prefix lets
 * secret scanners (and people) recognise a leaked one; only the SHA-256 of a token is
 * stored, so the database never holds a usable token. A fast hash is enough for 256
 * random bits: nobody can guess one, hashed or not.
 */
export const TOKEN_PREFIX = 'tapi_'
const TOKEN_PATTERN = /^tapi_[A-Za-z0-9_-]{43}$/
/** How much of a token is shown in lists: its prefix and four characters of the secret. */
const DISPLAY_LENGTH = TOKEN_PREFIX.length + 4

export interface NewToken {
  /** The token itself: shown to its owner once, never stored. */
  secret: string
  hash: Buffer
  display: string
}

export function newToken(): NewToken {
  const secret = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`
  return { secret, hash: hashToken(secret), display: secret.slice(0, DISPLAY_LENGTH) }
}

export const hashToken = (secret: string): Buffer => createHash('sha256').update(secret).digest()

/** Whether `text` can be a token at all (anything else is refused without a query). */
export const isWellFormedToken = (text: string) => TOKEN_PATTERN.test(text)
