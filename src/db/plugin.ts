import fastifyPostgres from '@fastify/postgres'
import pg from 'pg'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { databaseUnavailable, outcomeUnknown, overloaded } from '../lib/problem.js'
import { errorLine } from '../lib/logger.js'
import type { Metrics, Series } from '../lib/metrics.js'
import { currentCredit } from '../lib/server-timing.js'
import type { Database, Statements } from './client.js'
import { isConnectionFailure, isLostServer, isNotPrimary } from './errors.js'
import { CANCEL_GRACE_MS, cancelBackend, destroyConnection, namedQuery } from './pg-adapter.js'
import { querySummary } from './summary.js'
import { isoTimestampTypes } from './timestamps.js'

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
    // Connections are kept through a quiet spell (as HikariCP does), so the first burst
    // after a pause does not wait for the pool to open and every statement to be prepared
    // again (docs/benchmarks.md); TCP keepalive probes after a minute of silence keep NATs
    // and load balancers in between from dropping them meanwhile.
    idleTimeoutMillis: config.DATABASE_POOL_IDLE_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: 60_000,
    application_name: 'todos-api',
    // No session settings at connect time (statement_timeout, TimeZone through `options`):
    // a pooler in transaction mode (PgBouncer) refuses them, or drops them with
    // ignore_startup_parameters, and a setting made on one server connection would leak to
    // other clients. The statement limit is kept below instead, per statement; timestamps
    // come out right in any session time zone (db/timestamps.ts, resources/engine/rows.ts).
    types: isoTimestampTypes
  })

  // An idle client whose server went away emits 'error' on the pool; unhandled, that
  // would crash the process. The pool drops the client; the next query reconnects.
  app.pg.pool.on('error', (error) => app.log.warn({ reason: errorLine(error) }, 'idle database connection lost'))

  const pool = app.pg.pool
  const { metrics } = app
  metrics.observePool({
    get totalCount() {
      return pool.totalCount
    },
    get idleCount() {
      return pool.idleCount
    },
    get waitingCount() {
      return pool.waitingCount
    },
    max: config.DATABASE_POOL_MAX
  })
  const statementOf = statementCatalog(metrics, config.DATABASE_PREPARED_STATEMENTS)

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
  type Session = { client: pg.PoolClient; broken?: Error }
  // One error listener per connection for its life, reporting to the session that has it
  // checked out: an error event while checked out must not go unheard (nor crash the
  // process), and adding and removing a listener for every statement costs more.
  const sessionOf = new WeakMap<pg.ClientBase, Session>()
  pool.on('connect', (client) =>
    client.on('error', (error) => {
      const session = sessionOf.get(client)
      if (session) session.broken ??= error
    })
  )
  const { DATABASE_MAX_QUEUE: maxQueue, DATABASE_MAX_WAIT_MS: maxWait, DATABASE_POOL_MAX: poolMax } = config
  // Requests queued behind a full pool, in the pool's order (FIFO): the first has waited longest.
  // Getting an idle or a new connection is not queueing, however long a connect takes.
  const waiting = new Set<{ since: number }>()
  const open = async (): Promise<Session> => {
    // Past DATABASE_MAX_QUEUE waiting, or once the longest wait passes DATABASE_MAX_WAIT_MS, the
    // next is told at once to come back: an overload answered, not a timeout.
    if (maxQueue > 0 && pool.waitingCount >= maxQueue) throw overloaded('the service has more work waiting for the database than it takes on; try again in a moment', 'database_queue')
    const queues = maxWait > 0 && pool.idleCount === 0 && pool.totalCount >= poolMax
    const oldest = queues ? waiting.values().next().value : undefined
    if (oldest !== undefined && performance.now() - oldest.since >= maxWait) throw overloaded('requests are waiting too long for the database; try again in a moment', 'database_wait')
    let client: pg.PoolClient
    const wait = { since: performance.now() }
    if (queues) waiting.add(wait)
    try {
      client = await pool.connect()
    } catch (error) {
      metrics.connectionTimeouts.inc()
      throw isConnectionFailure(error) ? databaseUnavailable(undefined, error) : error
    } finally {
      waiting.delete(wait)
    }
    const session: Session = { client }
    sessionOf.set(client, session)
    return session
  }
  const close = (session: Session) => {
    sessionOf.delete(session.client)
    session.client.release(session.broken)
  }

  // The statements running now, and a sweep that cancels those past the limit and cuts the
  // connections of those whose cancel went unanswered: a timer per statement cost more than
  // the statement's own bookkeeping, and the limit is long enough for a tenth of it of slack.
  type Running = { session: Session; since: number; cancelledAt?: number; cut?: boolean }
  const running = new Set<Running>()
  const sweep = setInterval(
    () => {
      const now = Date.now()
      for (const statement of running) {
        if (statement.cancelledAt === undefined) {
          if (now - statement.since < limit) continue
          statement.cancelledAt = now
          metrics.statementCancels.inc()
          void cancelBackend(statement.session.client, CANCEL_GRACE_MS)
        } else if (!statement.cut && now - statement.cancelledAt >= CANCEL_GRACE_MS) {
          statement.cut = true
          metrics.connectionsCut.inc({ reason: 'cancel_unanswered' })
          destroyConnection(statement.session.client)
        }
      }
    },
    Math.min(SWEEP_MS, limit / 10)
  ).unref()
  app.addHook('onClose', async () => clearInterval(sweep))

  const execute = async (session: Session, text: string, values: unknown[] | undefined, write: boolean, named = true) => {
    const { client } = session
    const statement: Running = { session, since: Date.now() }
    const { name, timer } = statementOf(text)
    const started = performance.now()
    const credit = currentCredit()
    running.add(statement)
    let result: pg.QueryResult
    try {
      result = await (name === undefined || !named ? client.query(text, values) : namedQuery(client, name, text, values))
    } catch (error) {
      if ((error as { code?: string }).code === '57014') metrics.statementTimeouts.inc()
      if (isNotPrimary(error)) {
        if (session.broken === undefined) metrics.connectionsCut.inc({ reason: 'not_primary' })
        session.broken = error as Error
        throw databaseUnavailable('the database is changing over to another server; try again shortly', error)
      }
      if (!isConnectionFailure(error) && !isLostServer(error)) throw error
      if (session.broken === undefined) metrics.connectionsCut.inc({ reason: 'connection_failed' })
      session.broken = error as Error
      throw write ? outcomeUnknown(error) : databaseUnavailable(undefined, error)
    } finally {
      const ms = performance.now() - started
      timer.observe(ms / 1000)
      credit?.addDatabase(ms)
      running.delete(statement)
      if (statement.cancelledAt !== undefined) session.broken ??= new Error('statement cancelled after DATABASE_STATEMENT_TIMEOUT_MS')
    }
    // A write cancelled past the limit can still come back as a success: a COMMIT whose
    // wait for the synchronous standby is cancelled ends with a WARNING, committed on the
    // primary alone, which a failover would lose. It was not confirmed: never acknowledge it.
    if (write && statement.cancelledAt !== undefined) throw outcomeUnknown(new Error('the write was cancelled after DATABASE_STATEMENT_TIMEOUT_MS and not confirmed'))
    return result
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

/** How often running statements are checked against the statement limit (at most a tenth of it). */
const SWEEP_MS = 100

/** Distinct statements that get a name of their own; any beyond run unnamed. */
const MAX_NAMED_STATEMENTS = 1000

/**
 * What is known of each distinct statement text: a name, so PostgreSQL parses and plans
 * it once per connection instead of on every request (about half its CPU for a lookup by
 * id), and the histogram series of its summary (`SELECT todos`). Repositories build
 * statements from fixed fragments (filters, sort keys, columns), so the set of texts is
 * small; the cap keeps a bug from filling every connection's cache. Names are off with
 * DATABASE_PREPARED_STATEMENTS=false, for poolers that cannot carry them (PgBouncer in
 * transaction mode before 1.21).
 */
function statementCatalog(metrics: Metrics, prepared: boolean): (text: string) => { name: string | undefined; timer: Series } {
  const known = new Map<string, { name: string | undefined; timer: Series }>()
  const timerOf = (text: string) => metrics.statementDuration.child('postgresql', querySummary(text))
  return (text) => {
    let found = known.get(text)
    if (found === undefined) {
      if (known.size >= MAX_NAMED_STATEMENTS) return { name: undefined, timer: timerOf(text) }
      found = { name: prepared ? `todos_api_${known.size + 1}` : undefined, timer: timerOf(text) }
      known.set(text, found)
    }
    return found
  }
}

export default fp(dbPlugin, { name: 'db', fastify: '5.x', dependencies: ['@fastify/env', 'metrics'] })
