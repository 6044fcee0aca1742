/**
 * What each request costs, as behaviour: statements prepared once per connection, one
 * access line per request. (How fast it is, is for `make bench`.)
 */
import { spawnSync } from 'node:child_process'
import { Writable } from 'node:stream'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { newToken } from '../../src/accounts/tokens.js'
import { WHOLE_WRITE_BYTES, createLogger } from '../../src/lib/logger.js'
import { buildTestApp, expectProblem, freshDatabase, sql, testConfig } from '../helper.js'
import { collectingLogger } from '../support/logs.js'

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
  t.match(prepared.map((statement) => statement.statement).join('\n'), /FROM "todos" t WHERE t\.id = \$1 AND t\.owner_id = \$2::int/)
})

t.test('a server that refuses writes as a standby does (25006, after a failover): 503, nothing written, and the connection is dropped, never reused', async (t) => {
  const { app, db } = await buildTestApp(t, { env: { DATABASE_POOL_MAX: '1', DATABASE_BATCHING: 'false' } })
  const database = new URL(db).pathname.slice(1)
  // Connections made now are read-only, as those HAProxy made to a node that is now a standby.
  await sql(db, `ALTER DATABASE "${database}" SET default_transaction_read_only = on`)
  const refused = await app.inject({ method: 'POST', url: '/todos', payload: { title: 'on a standby' } })
  expectProblem(t, refused, 503, { code: 'DATABASE_UNAVAILABLE' }, 'refused')
  t.ok(refused.headers['retry-after'], 'with Retry-After')
  t.notMatch(refused.body, /read-only|INSERT/, 'not the database message')
  await sql(db, `BEGIN READ WRITE; ALTER DATABASE "${database}" RESET default_transaction_read_only; COMMIT`)
  // The read-only connection was dropped: the next write gets a new one, which writes.
  t.equal((await app.inject({ method: 'POST', url: '/todos', payload: { title: 'on the primary' } })).statusCode, 201)
  t.same(await sql(db, 'SELECT title FROM todos'), [{ title: 'on the primary' }])
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
  const { logger, lines } = collectingLogger()
  const db = await freshDatabase(t)
  const config = testConfig({ DATABASE_URL: db, LOG_LEVEL: 'info' })
  const app = await buildApp({ config, connectionString: db, loggerInstance: logger })
  t.teardown(() => app.close())

  const token = newToken().secret // well-formed, unknown: a 401
  await app.inject({ url: '/todos?limit=2', headers: { authorization: `Bearer ${token}`, cookie: 'session=secret' } })
  await app.inject('/todos/999')
  await app.inject('/health/ready')
  await app.inject('/health/live')
  const access = lines.filter((line) => line.msg === 'request')
  t.equal(access.length, 2, 'one line for each of the two API requests; none for the probes')
  t.match(access[0], { level: 30, method: 'GET', url: '/todos?limit=2', route: '/todos', status: 401, ms: Number, request_id: String })
  t.match(access[1], { method: 'GET', route: '/todos/:id', status: 404 })
  t.notOk(lines.some((line) => line.msg === 'incoming request' || line.msg === 'request completed'), "not Fastify's two lines as well")
  t.notMatch(JSON.stringify(lines), /secret/, 'no header value is logged')
  t.notOk(JSON.stringify(lines).includes(token.slice(5, 15)), 'nor any part of the token')
})

t.test("the server's log lines: one write at the end of each turn of the event loop, whole lines, in order", async (t) => {
  const writes: string[] = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      writes.push(String(chunk))
      done()
    }
  })
  const logger = createLogger({ LOG_LEVEL: 'info', LOG_PRETTY: false }, sink)
  for (let i = 1; i <= 3; i++) logger.info({ method: 'GET', status: 200, i }, 'request')
  t.same(writes, [], 'nothing while the turn that logged them runs')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(writes.length, 1, 'then one write for the turn')
  t.same(writes[0]?.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { i: number }).i), [1, 2, 3], 'every line, in order')

  // A busy turn: writes of whole lines, none longer than a pipe keeps whole.
  writes.length = 0
  for (let i = 0; i < 40; i++) logger.info({ i, pad: 'é'.repeat(150) }, 'busy')
  await new Promise((resolve) => setImmediate(resolve))
  t.ok(writes.length > 1 && writes.every((text) => Buffer.byteLength(text) <= WHOLE_WRITE_BYTES && text.endsWith('\n')), `${writes.length} writes of at most ${WHOLE_WRITE_BYTES} bytes, each ending a line`)
  t.same(writes.join('').split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { i: number }).i), Array.from({ length: 40 }, (_, i) => i))
})

t.test('log lines are not lost at exit, and a full stdout pipe does not stall the service', async (t) => {
  const logger = JSON.stringify(new URL('../../src/lib/logger.ts', import.meta.url).href)
  // Logged just before process.exit, and by an 'exit' listener after the logger's own.
  const exiting = spawnSync(
    process.execPath,
    ['--import', 'tsx', '-e', `const { createLogger } = await import(${logger}); const log = createLogger({ LOG_LEVEL: 'info', LOG_PRETTY: false }); process.on('exit', () => log.info('from an exit listener')); log.error('last words'); process.exit(3)`],
    { encoding: 'utf8' }
  )
  t.equal(exiting.status, 3)
  t.match(exiting.stdout, /"msg":"last words"[^]*"msg":"from an exit listener"/, 'both lines are written, in order')

  // 2000 lines of about 600 bytes while nobody reads the pipe for 1.5 s: the logger's
  // event loop keeps turning (a timer every 20 ms), and every line arrives once read.
  const child = `const { createLogger } = await import(${logger}); const log = createLogger({ LOG_LEVEL: 'info', LOG_PRETTY: false });
    let last = Date.now(), gap = 0; const timer = setInterval(() => { gap = Math.max(gap, Date.now() - last); last = Date.now() }, 20);
    let n = 0; const burst = () => { for (let i = 0; i < 100; i++) log.info({ n: n++, pad: 'x'.repeat(500) }, 'burst'); if (n < 2000) setTimeout(burst, 10); else setTimeout(() => { clearInterval(timer); process.stderr.write(JSON.stringify({ gap }) + '\\n') }, 300) }; burst()`
  const run = spawnSync('bash', ['-c', 'set -o pipefail; "$0" --import tsx -e "$1" | (sleep 1.5; cat)', process.execPath, child], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  t.equal(run.status, 0, 'the logger exits once its lines are written')
  const { gap } = JSON.parse(run.stderr.trim().split('\n').at(-1) ?? '{}') as { gap: number }
  t.ok(gap < 700, `the longest pause between timer ticks was ${gap} ms, while the pipe was full for about 1.5 s`)
  const numbers = run.stdout.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { n: number }).n)
  t.same(numbers, Array.from({ length: 2000 }, (_, i) => i), 'all 2000 lines, whole and in order')
})
