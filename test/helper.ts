import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import tap, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import type { Problem } from '../src/lib/problem.js'
import { withClient } from '../src/db/client.js'
import { destroyEmbeddedPostgres } from '../src/dev/embedded.js'
import { readClusterState } from './setup/cluster.js'
import { conformanceChecker, observe, type Observed } from './support/conformance.js'
import { watchOutput } from './support/output.js'
import { startPgBouncer, type PgBouncer } from './support/pgbouncer.js'
import { freePort } from './support/ports.js'

export { freePort, withClient }

export const ROOT = fileURLToPath(new URL('..', import.meta.url))

let databases = 0

/**
 * A database of this test's own, dropped when the test ends: a clone of the migrated
 * template (fast: a file copy), or an empty one with `migrated: false`.
 */
export async function freshDatabase(t: Test, { migrated = true } = {}): Promise<string> {
  const state = readClusterState()
  const name = `test_${process.pid}_${++databases}`
  await withClient(state.adminUrl, (client) =>
    client.query(`CREATE DATABASE ${name} TEMPLATE ${migrated ? state.templateDatabase : 'template0'}`)
  )
  t.teardown(() => withClient(state.adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)))
  const url = new URL(state.adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/** The config a test app runs with: defaults, quiet logs, plus `env`. No `.env` file. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ env: { NODE_ENV: 'test', LOG_LEVEL: 'silent', AUTH_MODE: 'local', ...env }, envFile: false })
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
 * PgBouncer in transaction mode (test/pooler.test.ts runs the HTTP contract files so),
 * with DATABASE_PREPARED_STATEMENTS as TEST_POOLER_PREPARED says (default false).
 */
const POOLER = process.env.TEST_POOLER === 'pgbouncer'
let bouncer: Promise<PgBouncer> | undefined

/** The app exactly as server.ts builds it, on a fresh migrated database, closed after the test. */
export async function buildTestApp(
  t: Test,
  options: { connectionString?: string; env?: Record<string, string> } = {}
): Promise<{ app: FastifyInstance; db: string }> {
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
  return { app, db }
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

/**
 * Adds `count` todos in one statement; each column is an SQL expression of `i`, the
 * row's number from 1 (e.g. `{ title: "'todo ' || i", completed: 'i % 3 = 0' }`).
 */
export async function insertTodos(connectionString: string, count: number, columns: Record<string, string>): Promise<void> {
  // The local user's unless `owner_id` says otherwise (tests act as the local user: AUTH_MODE=local).
  const all = { owner_id: '(SELECT id FROM users WHERE builtin)', ...columns }
  const names = Object.keys(all).map((name) => `"${name}"`).join(', ')
  await sql(connectionString, `INSERT INTO todos (${names}) SELECT ${Object.values(all).join(', ')} FROM generate_series(1, ${count}) i`)
}

/** Runs one statement on its own connection and returns the rows. */
export const sql = <R extends pg.QueryResultRow = Record<string, unknown>>(connectionString: string, text: string, values: unknown[] = []) =>
  withClient(connectionString, async (client) => (await client.query<R>(text, values)).rows)

/** A temporary directory removed after the test. */
export async function tempDir(t: Test, prefix = 'todos-api-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export interface ServerProcess {
  child: ChildProcess
  port: number
  url: string
  /** Every line the server printed so far (stdout and stderr). */
  output: string[]
  /** Resolves when the process exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resolves with the first line matching `pattern`, rejects if the process exits first. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>
}

const TSX = import.meta.resolve('tsx')

/**
 * Starts the real server (`src/server.ts` through tsx, or a compiled `dist/server.js`) as
 * a child process with `env` on top of a test baseline, from an empty working directory
 * so no `.env` applies. Killed after the test if still running.
 */
export async function startServer(
  t: Test,
  env: Record<string, string>,
  { entry = join(ROOT, 'src/server.ts'), cwd, wrap = [], nodeArgs = [] }: { entry?: string; cwd?: string; wrap?: string[]; nodeArgs?: string[] } = {}
): Promise<ServerProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort()
  const workdir = cwd ?? (await tempDir(t))
  const args = [...nodeArgs, ...(entry.endsWith('.ts') ? ['--import', TSX, entry] : [entry])]
  // `wrap`: a command the server runs under (e.g. unshare), given node and its arguments.
  const [file = process.execPath, ...rest] = [...wrap, process.execPath, ...args]
  const child = spawn(file, rest, {
    cwd: workdir,
    // Acting as the local user without a token, as `make dev` does (production refuses that).
    env: { PATH: process.env.PATH, NODE_ENV: 'test', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', ...(env.NODE_ENV === 'production' ? {} : { AUTH_MODE: 'local' }), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const { output, waitFor: waitForLine } = watchOutput(child)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const waitFor = async (pattern: RegExp, timeoutMs = 30_000) => output[await waitForLine(pattern, { timeoutMs })] as string
  return { child, port, url: `http://127.0.0.1:${port}`, output, exited, waitFor }
}

/** Runs `src/<script>` to completion the way the Makefile does, from an empty directory. */
export async function runScript(
  t: Test,
  script: string,
  args: string[],
  env: Record<string, string>,
  { cwd, root = ROOT }: { cwd?: string; root?: string } = {}
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const workdir = cwd ?? (await tempDir(t))
  const child = spawn(process.execPath, ['--import', TSX, join(root, 'src', script), ...args], {
    cwd: workdir,
    env: { PATH: process.env.PATH, NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  return { code, stdout, stderr }
}

/**
 * A directory for an embedded cluster of the test's own. Afterwards any server still
 * running there is stopped before the directory goes (a server whose data directory was
 * deleted can never be stopped cleanly).
 */
export async function embeddedClusterDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'todos-api-pg-'))
  await chmod(dir, 0o755) // as root, the server runs as the postgres user
  t.teardown(async () => {
    await destroyEmbeddedPostgres(join(dir, 'pg'))
    await rm(dir, { recursive: true, force: true })
  })
  return join(dir, 'pg')
}
