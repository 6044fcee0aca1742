import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'
import { HttpProblem } from '../lib/problem.js'

/**
 * Passwords are hashed with scrypt (memory-hard, in Node's own crypto) on libuv's thread
 * pool, so the event loop never waits for a hash. The parameters are one of OWASP's
 * recommended scrypt settings (N=2^14, r=8, p=5: 16 MiB, about 0.1 s here) and travel
 * inside the stored hash, so they can be raised later without breaking old hashes.
 * PASSWORD_HASH_COST is log2 N: 14 or more, lower only under NODE_ENV=test (config.ts).
 */
const params = (cost: number) => ({ N: 2 ** cost, r: 8, p: 5 })
const KEY_LENGTH = 32
/** Enough for any passphrase; a multi-megabyte "password" is refused before it is hashed. */
export const PASSWORD_MIN_LENGTH = 8
export const PASSWORD_MAX_LENGTH = 256

/**
 * Hashes at once, and hashes waiting their turn, beyond which a request is told to come
 * back (503) rather than queued: scrypt runs on libuv's four threads, which DNS lookups
 * (a new database connection's host name) and file reads share, and a flood of sign-ins
 * from many addresses must not stall them or grow a queue without bound.
 */
const HASHING_AT_ONCE = 2
const HASHES_WAITING = 16
let hashing = 0
const waiting: Array<() => void> = []

async function derive(password: string, salt: Buffer, params: { N: number; r: number; p: number }, length: number): Promise<Buffer> {
  if (hashing < HASHING_AT_ONCE) hashing++
  else if (waiting.length >= HASHES_WAITING) throw new HttpProblem(503, 'BUSY', 'too many password checks at once; try again shortly', { retryAfterSeconds: 1 })
  else await new Promise<void>((resolve) => waiting.push(resolve)) // handed its slot by the hash that ends
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const options: ScryptOptions = { ...params, maxmem: 256 * params.N * params.r }
      scrypt(password.normalize('NFC'), salt, length, options, (error, key) => (error ? reject(error) : resolve(key)))
    })
  } finally {
    const next = waiting.shift()
    if (next) next()
    else hashing--
  }
}

export interface Passwords {
  /** `scrypt$N$r$p$salt$key`, salt and key in base64. */
  hash(password: string): Promise<string>
  /**
   * Whether `password` matches `stored`, compared in constant time. With no stored hash
   * (an unknown email, a user without a password) a hash is still computed and compared,
   * so the answer takes as long as for a wrong password.
   */
  verify(password: string, stored: string | null | undefined): Promise<boolean>
}

export function passwords(cost: number): Passwords {
  const made = params(cost)
  const hash = async (password: string) => {
    const salt = randomBytes(16)
    const key = await derive(password, salt, made, KEY_LENGTH)
    return ['scrypt', made.N, made.r, made.p, salt.toString('base64'), key.toString('base64')].join('$')
  }
  let dummy: Promise<string> | undefined
  // A hash of a random password, made once: what an unknown email is checked against.
  const dummyHash = () => (dummy ??= hash(randomBytes(16).toString('hex')))
  const verify = async (password: string, stored: string | null | undefined) => {
    const parsed = parse(stored ?? '') ?? parse(await dummyHash())
    if (parsed === undefined) return false
    const key = await derive(password, parsed.salt, parsed.params, parsed.key.length)
    return timingSafeEqual(key, parsed.key) && stored !== null && stored !== undefined && parse(stored) !== undefined
  }
  return { hash, verify }
}

function parse(stored: string) {
  const [scheme, N, r, p, salt, key] = stored.split('$')
  if (scheme !== 'scrypt' || !salt || !key) return undefined
  const params = { N: Number(N), r: Number(r), p: Number(p) }
  if (!Object.values(params).every((value) => Number.isSafeInteger(value) && value > 0)) return undefined
  return { params, salt: Buffer.from(salt, 'base64'), key: Buffer.from(key, 'base64') }
}
