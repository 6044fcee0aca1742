import pg from 'pg'
import { errorLine } from '../lib/logger.js'

export interface WaitOptions {
  /** Give up after this long; 0 means a single attempt. */
  deadlineMs: number
  connectTimeoutMs?: number
  /** First pause between attempts; doubles each time up to `maxDelayMs`. */
  initialDelayMs?: number
  maxDelayMs?: number
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void
}

/** Raised when the database cannot be reached; `message` is safe to log (no password). */
export class DatabaseUnavailableError extends Error {
  constructor(message: string, readonly permanent: boolean) {
    super(message)
    this.name = 'DatabaseUnavailableError'
  }
}

/**
 * PostgreSQL error codes that retrying cannot fix: the server answered and said no.
 * Waiting 30 s for those only hides them. A host name that does not resolve is not one of
 * them: in compose or Kubernetes, a stopped `db` service's name does not resolve until it
 * starts again, so ENOTFOUND is waited out like a refused connection.
 */
const PERMANENT: Record<string, string> = {
  '28P01': 'authentication failed: check the user name and password',
  '28000': 'the server rejected the connection (role or pg_hba.conf)',
  '3D000': 'the database does not exist'
}

/**
 * Connects and runs `SELECT 1` until it works, with capped exponential backoff, until
 * the deadline. This replaces the tutorials' `while ! pg_isready; do sleep 1; done`.
 */
export async function waitForDatabase(connectionString: string, options: WaitOptions): Promise<void> {
  const { deadlineMs, connectTimeoutMs = 5000, initialDelayMs = 100, maxDelayMs = 2000, onRetry } = options
  const target = describeTarget(connectionString)
  const giveUpAt = Date.now() + deadlineMs
  let delayMs = initialDelayMs
  for (let attempt = 1; ; attempt++) {
    const remaining = giveUpAt - Date.now()
    // A single attempt (deadline 0) gets the whole connect timeout; later attempts never
    // outlast the deadline.
    const error = await tryConnect(connectionString, deadlineMs === 0 ? connectTimeoutMs : Math.max(100, Math.min(connectTimeoutMs, remaining)))
    if (error === undefined) return
    const code = (error as { code?: string }).code ?? ''
    const reason = errorLine(error)
    if (code in PERMANENT) {
      throw new DatabaseUnavailableError(`cannot use database ${target}: ${PERMANENT[code]} (${reason})`, true)
    }
    const left = giveUpAt - Date.now()
    if (left <= 0) {
      throw new DatabaseUnavailableError(
        `database ${target} did not become ready within ${Math.round(deadlineMs / 1000)} s (last error: ${reason})`,
        false
      )
    }
    const pause = Math.min(delayMs, left)
    onRetry?.({ attempt, delayMs: pause, reason })
    await new Promise((resolve) => setTimeout(resolve, pause))
    delayMs = Math.min(delayMs * 2, maxDelayMs)
  }
}

async function tryConnect(connectionString: string, timeoutMs: number): Promise<unknown> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs })
  client.on('error', () => {}) // a late socket error after a failed attempt must not crash us
  try {
    await client.connect()
    await client.query('SELECT 1')
    return undefined
  } catch (error) {
    return error
  } finally {
    await client.end().catch(() => {})
  }
}

/** `user@host:port/database` for log lines and error messages: never the password. */
export function describeTarget(connectionString: string): string {
  try {
    const url = new URL(connectionString)
    const user = url.username ? `${decodeURIComponent(url.username)}@` : ''
    return `${user}${url.hostname}:${url.port || '5432'}${url.pathname}`
  } catch {
    return '(unparseable connection string)'
  }
}
