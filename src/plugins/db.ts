import fastifyPostgres from '@fastify/postgres'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Database } from '../db/client.js'
import { isoTimestampTypes } from '../db/timestamps.js'
import { databaseUnavailable } from '../lib/problem.js'
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
  app.pg.pool.on('error', (error) => app.log.warn({ reason: errorLine(error) }, 'idle database connection lost'))

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
}

export default fp(dbPlugin, { name: 'db', fastify: '5.x', dependencies: ['@fastify/env'] })
