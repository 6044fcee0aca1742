import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import tap, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
// The decorators' types (app.auth, app.pg, app.checkReadiness...), from the plugins that declare them.
import type {} from '@fastify/postgres'
import type {} from '../../src/accounts/plugin.js'
import type {} from '../../src/db/plugin.js'
import type {} from '../../src/plugins/readiness.js'
import type {} from '../../src/plugins/shutdown.js'
import type {} from '../../src/resources/engine/plugin.js'
import type {} from '../../src/sync/plugin.js'
import { loadConfig, type Config } from '../../src/config.js'
import type { Problem } from '../../src/lib/problem.js'
import type { AnyResource } from '../../src/resources/engine/define.js'
import { conformanceChecker, observe, type Observed } from './conformance.js'
import { freshDatabase } from './database.js'
import { httpClient, jsonClient } from './http.js'
import { startPgBouncer, type PgBouncer } from './pgbouncer.js'

/** The config a test app runs with: defaults, quiet logs, plus `env`. No `.env` file. */
export function testConfig(env: Record<string, string> = {}): Config {
  // Shedding on the event loop and on the wait for a connection off: test files share two
  // cores with each other, and their loops lag and their waits grow for reasons of their
  // own (load-shedding.test.ts turns them on).
  return loadConfig({
    env: { NODE_ENV: 'test', LOG_LEVEL: 'silent', AUTH_MODE: 'local', METRICS_PORT: '0', PASSWORD_HASH_COST: '10', SHED_EVENT_LOOP_DELAY_MS: '0', DATABASE_MAX_WAIT_MS: '0', ...env },
    envFile: false
  })
}

/**
 * Answers that did not match the OpenAPI document, over the whole file. A test's own
 * teardown cannot assert any more, and what it throws would skip the teardowns after it
 * (dropping its database), so the file's root teardown fails the file instead, naming
 * every mismatch.
 */
const mismatches = new Set<string>()
tap.teardown(() => {
  if (mismatches.size > 0) throw new Error(`answers that do not match the OpenAPI document:\n${[...mismatches].join('\n')}`)
})

/**
 * TEST_POOLER=pgbouncer: the apps of this process reach their databases through one real
 * PgBouncer in transaction mode (test/process/pooler-contract.test.ts runs the HTTP contract files so),
 * with DATABASE_PREPARED_STATEMENTS as TEST_POOLER_PREPARED says (default false).
 */
const POOLER = process.env.TEST_POOLER === 'pgbouncer'
let bouncer: Promise<PgBouncer> | undefined

/** The app exactly as server.ts builds it, on a fresh migrated database, closed after the test. */
export async function buildTestApp(
  t: Test,
  options: { connectionString?: string; env?: Record<string, string>; resources?: readonly AnyResource[] } = {}
): Promise<{ app: FastifyInstance; db: string; api: ReturnType<typeof jsonClient> }> {
  const db = options.connectionString ?? (await freshDatabase(t))
  let requests = db
  const pooled: Record<string, string> = {}
  if (POOLER && options.connectionString === undefined) {
    bouncer ??= startPgBouncer(tap, db, { extra: process.env.TEST_POOLER_EXTRA ? [process.env.TEST_POOLER_EXTRA] : [] })
    requests = (await bouncer).through(db)
    Object.assign(pooled, { MIGRATION_DATABASE_URL: db, DATABASE_PREPARED_STATEMENTS: process.env.TEST_POOLER_PREPARED ?? 'false' })
  }
  // Every answer is recorded and checked against the app's own OpenAPI document at the end.
  const observed: Observed[] = []
  const app = await buildApp({
    config: testConfig({ DATABASE_URL: requests, ...pooled, ...options.env }),
    connectionString: requests,
    migrationConnectionString: db,
    ...(options.resources ? { resources: options.resources } : {}),
    logger: false,
    beforePlugins: (instance) =>
      instance.addHook('onSend', (request, reply, payload, done) => {
        observed.push(observe(request, reply, payload))
        done(null, payload)
      })
  })
  t.teardown(async () => {
    try {
      const recorded = observed.filter((answer) => !answer.route?.startsWith('/docs'))
      if (recorded.length > 0) {
        const check = conformanceChecker((await app.inject('/docs/json')).json())
        for (const violation of recorded.flatMap(check)) mismatches.add(`${t.name}: ${violation}`)
      }
    } finally {
      await app.close()
    }
  })
  return { app, db, api: jsonClient(app) }
}

/** buildTestApp's app listening on a port of its own, with a client over real HTTP. */
export async function listeningTestApp(t: Test, options: Parameters<typeof buildTestApp>[1] = {}) {
  const built = await buildTestApp(t, options)
  const url = await built.app.listen({ host: '127.0.0.1', port: 0 })
  return { ...built, url, http: (headers: Record<string, string> = {}) => httpClient(url, headers) }
}

/**
 * Asserts an error answer: its status, the problem+json content type, and that its body
 * matches `expected` (RFC 9457 fields, `code`, `errors`...). Returns the body.
 */
/** An answer, from `app.inject` or from fetch over real HTTP. */
export interface AnswerLike {
  statusCode: number
  headers: Record<string, unknown>
  json(): unknown
}

export function expectProblem(t: Test, response: AnswerLike | LightMyRequestResponse, status: number, expected: object = {}, label?: string): Problem {
  const prefix = label === undefined ? '' : `${label}: `
  t.equal(response.statusCode, status, `${prefix}status ${status}`)
  t.equal(response.headers['content-type'], 'application/problem+json', `${prefix}problem+json`)
  const body = response.json() as Problem
  t.match(body, expected, `${prefix}the problem's fields`)
  return body
}
