/**
 * What each request costs, as behaviour: statements prepared once per connection, one
 * access line per request. (How fast it is, is for `make bench`.)
 */
import { spawnSync } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { newToken } from '../src/auth/tokens.js'
import { createLogger, endOfTurnWriter } from '../src/logger.js'
import { buildTestApp, freshDatabase, testConfig } from './helper.js'

const preparedOnTheConnection = async (app: Awaited<ReturnType<typeof buildTestApp>>['app']) =>
  (await app.pg.pool.query<{ name: string; statement: string }>('SELECT name, statement FROM pg_prepared_statements ORDER BY name')).rows

t.test('every repository statement is a named prepared statement, one name per distinct text', async (t) => {
  // One connection, so the session the requests used is the one asked afterwards.
  const { app } = await buildTestApp(t, { env: { DATABASE_POOL_MAX: '1' } })
  const created = await app.inject({ method: 'POST', url: '/todos', payload: { title: 'prepared', completed: true } })
  // The same columns in another order: the same statement, not a new one per key order.
  t.equal((await app.inject({ method: 'POST', url: '/todos', payload: { completed: false, title: 'prepared again' } })).statusCode, 201)
  for (let i = 0; i < 3; i++) {
    t.equal((await app.inject('/todos/1')).statusCode, 200)
    t.equal((await app.inject('/todos?limit=5')).statusCode, 200)
  }
  t.equal(created.statusCode, 201)
  const prepared = (await preparedOnTheConnection(app)).filter((statement) => statement.statement.includes('"todos"'))
  t.equal(prepared.length, 3, 'insert, get and list: three statements, however often they ran')
  t.ok(prepared.every((statement) => /^todos_api_\d+$/.test(statement.name)), 'under our own names')
  t.match(prepared.map((statement) => statement.statement).join('\n'), /FROM "todos" t WHERE id = \$1 AND owner_id = \$2::int/)
})

t.test('DATABASE_PREPARED_STATEMENTS=false: nothing is prepared (for poolers that cannot carry it)', async (t) => {
  const { app } = await buildTestApp(t, { env: { DATABASE_POOL_MAX: '1', DATABASE_PREPARED_STATEMENTS: 'false' } })
  t.equal((await app.inject('/todos/1')).statusCode, 404)
  t.equal((await app.inject('/todos')).statusCode, 200)
  t.same(await preparedOnTheConnection(app), [])
})

t.test('pooled connections outlive a quiet spell (DATABASE_POOL_IDLE_TIMEOUT_MS), and close after it', async (t) => {
  const backend = async (app: Awaited<ReturnType<typeof buildTestApp>>['app']) => (await app.pg.pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

  const { app } = await buildTestApp(t, { env: { DATABASE_POOL_MAX: '1' } })
  t.equal((app.pg.pool as unknown as { options: { idleTimeoutMillis: number } }).options.idleTimeoutMillis, 600_000, 'ten minutes by default')
  const before = await backend(app)
  await pause(1200)
  t.equal(app.pg.pool.totalCount, 1, 'still open after a pause')
  t.equal(await backend(app), before, 'the same server connection: nothing to open or prepare again')

  const { app: brief } = await buildTestApp(t, { env: { DATABASE_POOL_MAX: '1', DATABASE_POOL_IDLE_TIMEOUT_MS: '200' } })
  const first = await backend(brief)
  await pause(800)
  t.equal(brief.pg.pool.totalCount, 0, 'closed once idle past the limit')
  t.not(await backend(brief), first, 'the next statement opens a new one')
  t.equal((await brief.inject('/todos/1')).statusCode, 404, 'and requests go on as before')
})

t.test('one access line per request at info, with what an operator needs and nothing secret', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  const db = await freshDatabase(t)
  const config = testConfig({ DATABASE_URL: db, LOG_LEVEL: 'info' })
  const app = await buildApp({ config, connectionString: db, loggerInstance: pino({ level: 'info' }, sink) })
  t.teardown(() => app.close())

  const token = newToken().secret // well-formed, unknown: a 401
  await app.inject({ url: '/todos?limit=2', headers: { authorization: `Bearer ${token}`, cookie: 'session=secret' } })
  await app.inject('/todos/999')
  await app.inject('/health/ready')
  await app.inject('/health/live')
  const access = lines.filter((line) => line.msg === 'request')
  t.equal(access.length, 2, 'one line for each of the two API requests; none for the probes')
  t.match(access[0], { level: 30, method: 'GET', url: '/todos?limit=2', route: '/todos', status: 401, ms: Number, reqId: String })
  t.match(access[1], { method: 'GET', route: '/todos/:id', status: 404 })
  t.notOk(lines.some((line) => line.msg === 'incoming request' || line.msg === 'request completed'), "not Fastify's two lines as well")
  t.notMatch(JSON.stringify(lines), /secret/, 'no header value is logged')
  t.notOk(JSON.stringify(lines).includes(token.slice(5, 15)), 'nor any part of the token')
})

t.test("the server's log lines: one write at the end of each turn of the event loop, in order, none lost on exit", async (t) => {
  const file = join(t.testdir(), 'out.log')
  const fd = openSync(file, 'w', 0o600)
  t.teardown(() => closeSync(fd))
  const logger = createLogger({ LOG_LEVEL: 'info', LOG_PRETTY: false }, fd)
  for (let i = 1; i <= 3; i++) logger.info({ method: 'GET', status: 200, i }, 'request')
  t.equal(readFileSync(file, 'utf8'), '', 'not while the turn that logged them runs')
  await new Promise((resolve) => setImmediate(resolve))
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as { i: number; msg: string })
  t.same(lines.map((line) => [line.msg, line.i]), [['request', 1], ['request', 2], ['request', 3]], 'but as soon as it ends, every line, in order')

  // What the writer hands on: one string a turn.
  const writes: string[] = []
  const writer = endOfTurnWriter({ write: (text: string) => writes.push(text), flushSync: () => {} } as never)
  writer.write('a\n')
  writer.write('b\n')
  await new Promise((resolve) => setImmediate(resolve))
  writer.write('c\n')
  writer.flushSync()
  t.same(writes, ['a\nb\n', 'c\n'], 'one write for the lines of a turn; flushSync writes what waits')

  // A process that logs and exits in the same turn still writes its line.
  const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', `const { createLogger } = await import(${JSON.stringify(new URL('../src/logger.ts', import.meta.url).href)}); createLogger({ LOG_LEVEL: 'info', LOG_PRETTY: false }).error('last words'); process.exit(3)`], { encoding: 'utf8' })
  t.equal(child.status, 3)
  t.match(child.stdout, /"msg":"last words"/, 'the line logged just before process.exit is written')
})
