import fastifyPostgres from '@fastify/postgres'
import pg from 'pg'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Database, Statements } from '../db/client.js'
import { cancelBackend } from '../db/cancel.js'
import { isoTimestampTypes } from '../db/timestamps.js'
import { databaseUnavailable, outcomeUnknown } from '../lib/problem.js'
import { errorLine } from '../logger.js'
import { isConnectionFailure } from './errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Database
  }
}

/**
 * The request pool (@fastify/postgres, closed with the app) and `app.db`, the query
 * function repositories use: a failure to reach the server becomes a 503 problem.
 */
async function dbPlugin(app: FastifyInstance, options: { connectionString: string }) {
  const config = app.config
  await app.register(fastifyPostgres, {
    connectionString: options.connectionString,
    max: config.DATABASE_POOL_MAX,
    // node-postgres waits forever by default: for a connection, for a pool slot, for a
    // query. Every one of those gets a limit, so a sick database means fast 503s, not a
    // pile of hung requests.
    connectionTimeoutMillis: config.DATABASE_CONNECT_TIMEOUT_MS,
    // Connections are kept through a quiet spell (10 minutes by default, as HikariCP
    // does): closed after 30 s, the first burst after a pause waited for the whole pool
    // to be opened and every statement prepared again, a p99 of 21–41 ms against 7–11 ms
    // (bench, after 35 s idle). TCP keepalive probes once a minute of silence, so a NAT
    // or load balancer between here and the database does not drop them meanwhile.
    idleTimeoutMillis: config.DATABASE_POOL_IDLE_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: 60_000,
    application_name: 'todos-api',
    // No session settings at connect time (statement_timeout, TimeZone through `options`):
    // a pooler in transaction mode (PgBouncer) refuses them, or drops them with
    // ignore_startup_parameters, and a setting made on one server connection would leak to
    // other clients. The statement limit is kept below instead, per statement; timestamps
    // come out right in any session time zone (db/timestamps.ts, crud/item-json.ts).
    types: isoTimestampTypes
  })

  // An idle client whose server went away emits 'error' on the pool; unhandled, that
  // would crash the process. The pool drops the client; the next query reconnects.
  app.pg.pool.on('error', (error) => app.log.warn({ reason: errorLine(error) }, 'idle database connection lost'))

  const pool = app.pg.pool
  const nameFor = config.DATABASE_PREPARED_STATEMENTS ? statementNames() : () => undefined

  /**
   * One statement on a pooled connection. Failing to get a connection is a 503 (nothing
   * was sent). A statement still running after DATABASE_STATEMENT_TIMEOUT_MS is cancelled
   * (a CancelRequest, which poolers forward): PostgreSQL stops and rolls it back and
   * answers 57014, a 503 the client may retry. If not even the cancel is answered within
   * CANCEL_GRACE_MS, or the connection fails once the statement was sent, the connection
   * is destroyed and for a write the answer is OUTCOME_UNKNOWN. A connection that timed
   * out is never reused, so a late cancel cannot hit a later statement.
   */
  const limit = config.DATABASE_STATEMENT_TIMEOUT_MS
  /** A pooled connection checked out, and what went wrong on it (it is then destroyed, not reused). */
  type Session = { client: pg.PoolClient; broken?: Error; onError: (error: Error) => void }
  const open = async (): Promise<Session> => {
    let client: pg.PoolClient
    try {
      client = await pool.connect()
    } catch (error) {
      throw isConnectionFailure(error) ? databaseUnavailable(undefined, error) : error
    }
    const session: Session = { client, onError: (error) => (session.broken = error) } // while checked out, an error event must not go unheard
    client.on('error', session.onError)
    return session
  }
  const close = (session: Session) => {
    session.client.off('error', session.onError)
    session.client.release(session.broken)
  }
  const execute = async (session: Session, text: string, values: unknown[] | undefined, write: boolean, named = true) => {
    const { client } = session
    let timedOut = false
    let lastResort: NodeJS.Timeout | undefined
    const timer = setTimeout(() => {
      timedOut = true
      void cancelBackend(client, CANCEL_GRACE_MS)
      lastResort = setTimeout(() => destroyConnection(client), CANCEL_GRACE_MS)
    }, limit)
    try {
      const name = named ? nameFor(text) : undefined
      return await (name === undefined ? client.query(text, values) : namedQuery(client, name, text, values))
    } catch (error) {
      if (!isConnectionFailure(error) && !isLostServer(error)) throw error
      session.broken = error as Error
      throw write ? outcomeUnknown(error) : databaseUnavailable(undefined, error)
    } finally {
      clearTimeout(timer)
      clearTimeout(lastResort)
      if (timedOut) session.broken ??= new Error('statement cancelled after DATABASE_STATEMENT_TIMEOUT_MS')
    }
  }
  const run = async (text: string, values: unknown[] | undefined, write: boolean) => {
    const session = await open()
    try {
      return await execute(session, text, values, write)
    } finally {
      close(session)
    }
  }

  /**
   * `use` inside one transaction on one connection, each statement under the same limits.
   * Nothing is committed unless COMMIT is answered: a statement that fails before it is a
   * 503 (rolled back, safe to retry), a COMMIT that goes unanswered OUTCOME_UNKNOWN. A
   * connection that failed is destroyed, which rolls back what it held.
   */
  const transaction = async <T>(use: (tx: Statements) => Promise<T>): Promise<T> => {
    const session = await open()
    try {
      await execute(session, 'BEGIN', undefined, false, false)
      const result = await use({ query: (text, values) => execute(session, text, values, false), write: (text, values) => execute(session, text, values, false) })
      await execute(session, 'COMMIT', undefined, true, false)
      return result
    } catch (error) {
      if (session.broken === undefined) {
        await execute(session, 'ROLLBACK', undefined, false, false).catch((rollbackError: Error) => (session.broken ??= rollbackError))
      }
      throw error
    } finally {
      close(session)
    }
  }
  app.decorate<Database>('db', {
    query: (text, values) => run(text, values, false),
    write: (text, values) => run(text, values, true),
    transaction
  })
}

/**
 * A named prepared statement, without node-postgres' copy of its config: pg 8.23 copies
 * every config object it is given with Object.getOwnPropertyDescriptors (1.7 µs a
 * statement, a few % of a lookup by id; brianc/node-postgres#3720, and #3743 drops the
 * copy again), while a text and values are taken as they are. The name is then set as
 * the config would have set it; test/request-path.test.ts checks the statements are
 * prepared under it.
 */
function namedQuery(client: pg.PoolClient, name: string, text: string, values: unknown[] | undefined): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    const query = new pg.Query(text, values, (error, result) => (error ? reject(error) : resolve(result as unknown as pg.QueryResult)))
    ;(query as pg.Query & { name?: string }).name = name
    client.query(query)
  })
}

/**
 * A server connection lost under a statement, reported as an error rather than as a
 * dropped socket: PgBouncer answers its client `FATAL 08P01 server conn crashed?` when
 * the server connection dies mid-statement, and PostgreSQL `FATAL 57P01` when an
 * administrator terminates the backend. The statement may have committed. (PgBouncer's
 * `query_wait_timeout` is FATAL too, but then nothing was sent: the usual 503.)
 */
function isLostServer(error: unknown): boolean {
  const { severity, code = '', message = '' } = error as { severity?: string; code?: string; message?: string }
  if (/query_wait_timeout/.test(message)) return false
  return severity === 'FATAL' || severity === 'PANIC' || code.startsWith('08') || /^57P0[1-3]$/.test(code)
}

/** How long a cancelled statement has to stop before its connection is cut. */
export const CANCEL_GRACE_MS = 1000

/** Closes a connection's socket under a running statement, which then fails at once. */
function destroyConnection(client: pg.PoolClient) {
  ;(client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy()
}

/** Distinct statements that get a name of their own; any beyond run unnamed. */
const MAX_NAMED_STATEMENTS = 1000

/**
 * A name for each distinct statement text, so PostgreSQL parses and plans it once per
 * connection instead of on every request (about half its CPU for a lookup by id).
 * Repositories build statements from fixed fragments (filters, sort keys, columns), so
 * the set of texts is small; the cap keeps a bug from filling every connection's cache.
 * DATABASE_PREPARED_STATEMENTS=false turns names off, for poolers that cannot carry them
 * (PgBouncer in transaction mode before 1.21).
 */
function statementNames(): (text: string) => string | undefined {
  const names = new Map<string, string>()
  return (text) => {
    let name = names.get(text)
    if (name === undefined && names.size < MAX_NAMED_STATEMENTS) {
      name = `todos_api_${names.size + 1}`
      names.set(text, name)
    }
    return name
  }
}

export default fp(dbPlugin, { name: 'db', fastify: '5.x', dependencies: ['@fastify/env'] })
