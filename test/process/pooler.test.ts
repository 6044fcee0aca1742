/**
 * The service behind a real PgBouncer in transaction mode (Debian's 1.18, running
 * docker/pgbouncer/pgbouncer.ini): timestamps and time limits hold with pooled sessions of
 * another time zone and no statement_timeout, a cut server connection is answered honestly,
 * and two server processes on one database migrate once over MIGRATION_DATABASE_URL and
 * agree on ETags and revoked tokens. (pooler-contract.test.ts: the contract files through it.)
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import pg from 'pg'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { freshDatabase, sql, startServer, testConfig } from '../helper.js'
import { openEvents } from '../support/events.js'
import { startPgBouncer } from '../support/pgbouncer.js'

t.test('through a pooler whose sessions have another TimeZone and no statement_timeout: timestamps exact, the time limit holds per statement', async (t) => {
  const db = await freshDatabase(t)
  const name = new URL(db).pathname.slice(1)
  // Every session of this database, including PgBouncer's server connections, starts in a
  // zone 12:45 or 13:45 hours from UTC, and with no statement limit at all.
  await sql(db, `ALTER DATABASE ${name} SET TimeZone = 'Pacific/Chatham'`)
  await sql(db, `ALTER DATABASE ${name} SET statement_timeout = 0`)
  const bouncer = await startPgBouncer(t, db)
  const pooled = bouncer.through(db)
  const [session] = await sql<{ tz: string; limit: string }>(pooled, `SELECT current_setting('TimeZone') AS tz, current_setting('statement_timeout') AS limit`)
  t.same(session, { tz: 'Pacific/Chatham', limit: '0' }, 'the pooled sessions really are in another zone, without a limit')

  const app = await buildApp({
    config: testConfig({ DATABASE_URL: pooled, MIGRATION_DATABASE_URL: db, DATABASE_PREPARED_STATEMENTS: 'false', DATABASE_STATEMENT_TIMEOUT_MS: '1000' }),
    connectionString: pooled,
    migrationConnectionString: db,
    logger: false
  })
  t.teardown(() => app.close())

  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200)
  t.same(ready.json().checks.migrationDatabase, { status: 'ok' }, 'readiness checked the direct connection too')

  for (const due of ['2026-01-01T00:00:00.100Z', '2026-06-30T23:59:59.999Z', '1000-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z']) {
    const created = await app.inject({ method: 'POST', url: '/todos', payload: { title: due, due_date: due } })
    t.equal(created.statusCode, 201)
    t.equal(created.json().due_date, due, `${due}: as created`)
    t.equal((await app.inject(`/todos/${created.json().id}`)).json().due_date, due, `${due}: read by id`)
    const listed = ((await app.inject('/todos?limit=100')).json() as Array<{ id: number; due_date: string; created_at: string }>).find((todo) => todo.id === created.json().id)
    t.equal(listed?.due_date, due, `${due}: in a list (JSON built by PostgreSQL)`)
    t.match(listed?.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'created_at in UTC')
  }

  // A statement that cannot finish: another session holds the row's lock.
  const { id } = (await app.inject({ method: 'POST', url: '/todos', payload: { title: 'locked' } })).json() as { id: number }
  const holder = new pg.Client({ connectionString: db })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('BEGIN')
  await holder.query('SELECT 1 FROM todos WHERE id = $1 FOR UPDATE', [id])
  const started = Date.now()
  const blocked = await app.inject({ method: 'PATCH', url: `/todos/${id}`, payload: { title: 'never' } })
  const took = Date.now() - started
  t.equal(blocked.statusCode, 503, 'cancelled: the write did not happen, so 503, retry allowed')
  t.equal(blocked.json().code, 'DATABASE_UNAVAILABLE')
  t.ok(blocked.headers['retry-after'], 'with Retry-After')
  t.ok(took >= 900 && took < 3000, `answered after the 1 s limit, not later (${took} ms)`)
  const waiting = await sql(db, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
  t.same(waiting, [], 'no statement is left waiting in PostgreSQL: the cancel reached it through PgBouncer')
  await holder.query('ROLLBACK')
  const [row] = await sql<{ title: string }>(db, 'SELECT title FROM todos WHERE id = $1', [id])
  t.equal(row?.title, 'locked', 'nothing changed')
  t.equal((await app.inject({ method: 'PATCH', url: `/todos/${id}`, payload: { title: 'now' } })).statusCode, 200, 'and the next statement runs')
})

t.test('PgBouncer losing its server connection under a write: 504 OUTCOME_UNKNOWN, never "retry"; under a read: 503', async (t) => {
  const db = await freshDatabase(t)
  const bouncer = await startPgBouncer(t, db)
  const pooled = bouncer.through(db)
  const app = await buildApp({
    config: testConfig({ DATABASE_URL: pooled, MIGRATION_DATABASE_URL: db, DATABASE_PREPARED_STATEMENTS: 'false' }),
    connectionString: pooled,
    migrationConnectionString: db,
    logger: false
  })
  t.teardown(() => app.close())
  const { id } = (await app.inject({ method: 'POST', url: '/todos', payload: { title: 'contested' } })).json() as { id: number }
  for (const [label, request, status, code] of [
    ['PATCH', { method: 'PATCH' as const, url: `/todos/${id}`, payload: { title: 'maybe' } }, 504, 'OUTCOME_UNKNOWN'],
    ['GET list', { method: 'GET' as const, url: '/todos?title=contested&limit=5' }, 503, 'DATABASE_UNAVAILABLE']
  ] as const) {
    const holder = new pg.Client({ connectionString: db })
    await holder.connect()
    const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid
    await holder.query('BEGIN')
    await holder.query('LOCK TABLE todos IN ACCESS EXCLUSIVE MODE')
    const answer = app.inject(request)
    // The server connection PgBouncer lent the statement, stuck behind the lock: killed.
    let waiting: Array<{ pid: number; port: number }> = []
    for (let i = 0; i < 100 && waiting.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      waiting = await sql<{ pid: number; port: number }>(
        db,
        `SELECT pid, client_port AS port FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1`,
        [holderPid]
      )
    }
    // PgBouncer's own log line about it is a race (it writes one only if it reads the
    // server's end before the service hangs up), so ask the kernel, before the kill,
    // whose connection it is.
    const { stdout } = await promisify(execFile)('ss', ['-Htnp', 'state', 'established', `( dport = :${new URL(db).port} )`])
    const pgbouncerPorts = stdout
      .split('\n')
      .filter((line) => line.includes('"pgbouncer"'))
      .map((line) => Number(line.trim().split(/\s+/)[2]?.split(':').pop()))
    const killed = waiting.length === 1 ? await sql(db, 'SELECT pg_terminate_backend($1)', [waiting[0]?.pid]) : []
    t.equal(killed.length, 1, `${label}: the server connection under the statement was terminated`)
    t.ok(pgbouncerPorts.includes(waiting[0]?.port ?? -1), `${label}: it was one PgBouncer had opened`)
    const response = await answer
    t.equal(response.statusCode, status, label)
    t.equal(response.json().code, code, label)
    t.equal(response.headers['retry-after'] === undefined, status === 504, `${label}: Retry-After only when a retry is safe`)
    await holder.query('ROLLBACK')
    await holder.end()
  }
})

t.test('two replicas on PgBouncer: migrate once over MIGRATION_DATABASE_URL, one of two editors wins, a revoked token is refused everywhere', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const bouncer = await startPgBouncer(t, db)
  const env = {
    DATABASE_URL: bouncer.through(db),
    MIGRATION_DATABASE_URL: db,
    DATABASE_PREPARED_STATEMENTS: 'false',
    AUTH_MODE: 'required',
    SIGNUP: 'open'
  }
  const [one, two] = await Promise.all([startServer(t, env), startServer(t, env)])
  await Promise.all([one.waitFor(/"msg":"Server listening/), two.waitFor(/"msg":"Server listening/)])
  const applied = await sql<{ name: string; count: string }>(db, 'SELECT name, count(*) FROM pgmigrations GROUP BY name ORDER BY name')
  t.ok(applied.length >= 5, `${applied.length} migrations applied`)
  t.ok(applied.every((row) => row.count === '1'), 'each exactly once')
  const ran = [one, two].filter((server) => server.output.some((line) => /applied \d+ migration/.test(line)))
  t.equal(ran.length, 1, 'one replica migrated; the other found the schema current')
  for (const server of [one, two]) {
    const ready = await fetch(`${server.url}/health/ready`)
    t.equal(ready.status, 200)
    t.match(await ready.json(), { checks: { database: { status: 'ok' }, migrations: { status: 'ok' }, migrationDatabase: { status: 'ok' } } })
  }

  const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  t.equal((await post(`${one.url}/users`, { email: 'ada@example.com', name: 'Ada', password: 'correct horse battery' })).status, 201)
  const token = (await (await post(`${two.url}/tokens`, { email: 'ada@example.com', password: 'correct horse battery' })).json()) as { id: number; token: string }
  const auth = { authorization: `Bearer ${token.token}` }

  const created = (await (await post(`${one.url}/todos`, { title: 'shared' }, auth)).json()) as { id: number }
  const etag = (await fetch(`${two.url}/todos/${created.id}`, { headers: auth })).headers.get('etag') ?? ''
  t.equal(etag, '"1"')
  const edit = (server: typeof one, title: string) =>
    fetch(`${server.url}/todos/${created.id}`, { method: 'PATCH', headers: { ...auth, 'if-match': etag, 'content-type': 'application/json' }, body: JSON.stringify({ title }) })
  const statuses = (await Promise.all([edit(one, 'from one'), edit(two, 'from two')])).map((response) => response.status).sort()
  t.same(statuses, [200, 412], 'two editors on two replicas with the same ETag: one wins, the other gets 412')

  t.equal((await fetch(`${one.url}/tokens/${token.id}`, { method: 'DELETE', headers: auth })).status, 204, 'revoked on one replica')
  const refused = await fetch(`${two.url}/todos`, { headers: auth })
  t.equal(refused.status, 401, 'refused by the other on the very next request')
  t.equal(bouncer.output.filter((line) => /registered new auto-database/.test(line)).length >= 1, true, 'requests went through PgBouncer')
})

t.test('GET /events with requests through PgBouncer: LISTEN goes to MIGRATION_DATABASE_URL, and a write through the pooler reaches the stream', async (t) => {
  const db = await freshDatabase(t)
  const bouncer = await startPgBouncer(t, db)
  const pooled = bouncer.through(db)
  const app = await buildApp({
    config: testConfig({ DATABASE_URL: pooled, MIGRATION_DATABASE_URL: db, DATABASE_PREPARED_STATEMENTS: 'false' }),
    connectionString: pooled,
    migrationConnectionString: db,
    logger: false
  })
  t.teardown(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const stream = await openEvents(`${url}/events`)
  t.teardown(() => stream.close())
  await stream.until((events) => events.some((event) => event.event === 'ready'))
  const [listener] = await sql<{ port: number | null }>(db, `SELECT client_port AS port FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'todos-api events' AND query = 'LISTEN changes'`)
  t.ok(listener, 'one session LISTENs, on the direct connection')
  const created = await app.inject({ method: 'POST', url: '/todos', payload: { title: 'through the pooler' } })
  t.equal(created.statusCode, 201)
  await stream.until(() => stream.changes().length === 1, 1500)
  t.equal(stream.changes()[0]?.data.id, created.json().id, 'pushed at once: the notification reached the listener')
})
