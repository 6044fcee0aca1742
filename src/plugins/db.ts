import fastifyPostgres from '@fastify/postgres'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import pg from 'pg'
import { appliedMigrations, migrationFiles } from '../db/migrate.js'
import { isoTimestampTypes } from '../db/timestamps.js'
import { reasonFor } from '../db/wait.js'
import { databaseUnavailable } from '../lib/problem.js'
import { isConnectionFailure } from './errors.js'

export interface CheckResult {
  status: 'ok' | 'failing'
  detail?: string
}

export interface ReadinessReport {
  ready: boolean
  checks: { database: CheckResult; migrations: CheckResult }
}

/** The queries repositories run; failures to reach the server become a 503 problem. */
export interface Database {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>
}

declare module 'fastify' {
  interface FastifyInstance {
    db: Database
    /** Asks the database to answer within `DATABASE_READY_TIMEOUT_MS` and checks migrations. */
    checkDatabase(): Promise<ReadinessReport>
  }
}

export interface DbPluginOptions {
  connectionString: string
}

/** How long readiness waits for the database; the probe must answer within ~1 s. */
const PROBE_TIMEOUT_MS = 500

async function dbPlugin(app: FastifyInstance, options: DbPluginOptions) {
  const config = app.config
  await app.register(fastifyPostgres, {
    connectionString: options.connectionString,
    max: config.DATABASE_POOL_MAX,
    // node-postgres waits forever by default: for a connection, for a pool slot, for a
    // query. Every one of those gets a limit, so a sick database means fast 503s, not a
    // pile of hung requests.
    connectionTimeoutMillis: config.DATABASE_CONNECT_TIMEOUT_MS,
    statement_timeout: config.DATABASE_STATEMENT_TIMEOUT_MS,
    query_timeout: config.DATABASE_STATEMENT_TIMEOUT_MS + 1000,
    idle_in_transaction_session_timeout: config.DATABASE_STATEMENT_TIMEOUT_MS * 2,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'todos-api',
    // Timestamps leave PostgreSQL in UTC and reach the app as ISO 8601 strings.
    options: '-c TimeZone=UTC',
    types: isoTimestampTypes
  })

  // An idle client whose server went away emits 'error' on the pool; unhandled, that
  // would crash the process. The pool drops the client; the next query reconnects.
  app.pg.pool.on('error', (error) => app.log.warn({ reason: reasonFor(error) }, 'idle database connection lost'))

  const pool = app.pg.pool
  app.decorate<Database>('db', {
    async query(text, values) {
      try {
        return await pool.query(text, values)
      } catch (error) {
        if (isConnectionFailure(error)) throw databaseUnavailable(undefined, error)
        throw error
      }
    }
  })

  const expected = (await migrationFiles()).map((file) => file.name)
  let inFlight: Promise<ReadinessReport> | undefined
  app.decorate('checkDatabase', () => {
    // One probe at a time: a hung database must not make every probe take a pool slot.
    inFlight ??= probe(pool, expected).finally(() => {
      inFlight = undefined
    })
    return inFlight
  })
}

async function probe(pool: pg.Pool, expected: string[]): Promise<ReadinessReport> {
  const failing = (detail: string): ReadinessReport => ({
    ready: false,
    checks: { database: { status: 'failing', detail }, migrations: { status: 'failing', detail: 'not checked: the database did not answer' } }
  })
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS)
  })
  try {
    const applied = await Promise.race([
      (async () => {
        // query_timeout per query is supported by pg but missing from its types.
        await pool.query({ text: 'SELECT 1', query_timeout: PROBE_TIMEOUT_MS } as pg.QueryConfig)
        return appliedMigrations(pool)
      })(),
      timeout
    ])
    const pending = expected.filter((name) => !applied.has(name))
    const migrations: CheckResult =
      pending.length === 0 ? { status: 'ok', detail: `${expected.length} applied` } : { status: 'failing', detail: `pending: ${pending.join(', ')}` }
    return { ready: pending.length === 0, checks: { database: { status: 'ok' }, migrations } }
  } catch (error) {
    return failing(reasonFor(error))
  } finally {
    clearTimeout(timer)
  }
}

export default fp(dbPlugin, { name: 'db', fastify: '5.x', dependencies: ['@fastify/env'] })
