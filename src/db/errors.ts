import pg from 'pg'
import { HttpProblem, databaseUnavailable } from '../lib/problem.js'

/**
 * SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html) to
 * statuses. The schema rejects bad input before SQL runs; these catch what only the
 * database can know (uniqueness, references) and keep the rest from becoming a 500.
 */
export function databaseProblem(error: pg.DatabaseError): HttpProblem {
  const code = error.code ?? ''
  // PostgreSQL's own message names tables, values and constraints: it goes to the log
  // (at info, with the 4xx), never to the client.
  if (code === '23505' || code === '23503') return new HttpProblem(409, 'CONFLICT', 'the request conflicts with data that exists', { cause: error })
  if (code.startsWith('22') || code === '23502' || code === '23514') {
    return new HttpProblem(400, 'INVALID_VALUE', 'a value in the request cannot be stored; check the documented limits of each field', { cause: error })
  }
  if (code === '40001' || code === '40P01') {
    return new HttpProblem(503, 'RETRY', 'the request collided with another one; try again', { retryAfterSeconds: 1 })
  }
  if (code === '57014') return databaseUnavailable('the database took too long to answer; try again shortly', error)
  if (code === '42P01' || code === '42703') {
    // A table or column the code needs is missing: the schema is behind (MIGRATE_ON_START=false
    // with migrations pending). Readiness is red too; this clears once migrated.
    return new HttpProblem(503, 'SCHEMA_NOT_READY', 'the database schema is not up to date; try again once it is migrated', {
      retryAfterSeconds: 30,
      cause: error
    })
  }
  if (/^(08|53|57P|58)/.test(code) || code === '25006') return databaseUnavailable(undefined, error)
  return new HttpProblem(500, 'INTERNAL_ERROR', 'the server failed to handle the request; it has been logged')
}

/** Errors node-postgres raises itself when it cannot reach or keep a server connection. */
export function isConnectionFailure(error: unknown): boolean {
  const { code, message = '' } = error as { code?: string; message?: string }
  if (code && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) return true
  return /timeout exceeded when trying to connect|Connection terminated|Query read timeout|Client was closed|Client has encountered a connection error|Cannot use a pool after calling end/i.test(
    message
  )
}

/**
 * A server connection lost under a statement, reported as an error rather than as a
 * dropped socket: PgBouncer answers its client `FATAL 08P01 server conn crashed?` when
 * the server connection dies mid-statement, and PostgreSQL `FATAL 57P01` when an
 * administrator terminates the backend. The statement may have committed. (PgBouncer's
 * `query_wait_timeout` is FATAL too, but then nothing was sent: the usual 503.)
 */
export function isLostServer(error: unknown): boolean {
  const { severity, code = '', message = '' } = error as { severity?: string; code?: string; message?: string }
  if (/query_wait_timeout/.test(message)) return false
  return severity === 'FATAL' || severity === 'PANIC' || code.startsWith('08') || /^57P0[1-3]$/.test(code)
}

/**
 * The server is not (or no longer) a primary: a standby refuses writes with 25006, and a
 * server in recovery or shutting down refuses connections with 57P03. Nothing was written,
 * and the connection is not used again: straight through HAProxy it stays on that node.
 * (Behind PgBouncer this drops our connection to PgBouncer only; HAProxy's
 * on-marked-down shutdown-sessions is what cuts PgBouncer's to the old node.)
 */
export function isNotPrimary(error: unknown): boolean {
  const { code } = error as { code?: string }
  return code === '25006' || code === '57P03'
}
