/**
 * GET /events (Server-Sent Events): each change pushed as it commits, resumed with no gap,
 * tickets for browsers, revocation, two replicas, the access log, and the bundled nginx.
 */
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { expectProblem, freshDatabase, listeningTestApp, sql, testConfig, usersWithTokens } from '../helper.js'
import { openEvents, type EventStream } from '../support/events.js'
import { httpClient } from '../support/http.js'
import { LIVE_TICKETS } from '../../src/sync/tickets.js'
import { collectingLogger } from '../support/logs.js'
import { startNginx } from '../support/nginx.js'

const changeKeys = (stream: EventStream) => stream.changes().map(({ data }) => `${data.type} ${data.id}${data.deleted ? ' deleted' : ''}`)

t.test('GET /events over real HTTP: ready, then each change as it commits; a reconnect with Last-Event-ID resumes with no gap and no duplicate', async (t) => {
  const { http, db, url } = await listeningTestApp(t, { env: { AUTH_MODE: 'required', EVENTS_HEARTBEAT_MS: '1000' } })
  const { ada, bob } = await usersWithTokens(db, ['ada', 'bob'])
  const [asAda, asBob] = [http(ada.headers), http(bob.headers)]

  const stream = await openEvents(`${url}/events`, ada.headers)
  t.teardown(() => stream.close())
  t.equal(stream.status, 200)
  t.match(stream.headers['content-type'], /^text\/event-stream/)
  t.equal(stream.headers['cache-control'], 'no-cache')
  t.equal(stream.headers['x-accel-buffering'], 'no', 'nginx passes it on unbuffered')
  const [hint, ready] = await stream.until((events) => events.length >= 2)
  t.equal(hint?.retry, 1000, 'a retry hint first')
  t.equal(ready?.event, 'ready')
  t.equal(JSON.parse(ready?.data ?? '{}').cursor, ready?.id, 'ready carries the cursor, as its id')

  const todo = await asAda.create('/todos', { title: 'one' })
  await asBob.create('/todos', { title: "bob's" })
  const cat = await asAda.create('/cats', { name: 'Tom', price: 1 })
  await stream.until(() => stream.changes().length >= 2)
  t.same(changeKeys(stream), [`todo ${todo.id}`, `cat ${cat.id}`], "ada's changes in commit order, nothing of bob's")
  t.same(stream.changes()[0]?.data.data, (await asAda.get(`/todos/${todo.id}`)).json(), 'data is the item as GET returns it')

  await stream.until((events) => events.some((event) => event.comment !== undefined), 3000)
  t.pass('a heartbeat comment within EVENTS_HEARTBEAT_MS')

  // Disconnect; changes meanwhile; reconnect from the last event id.
  const lastId = stream.changes().at(-1)?.id as string
  stream.close()
  await asAda.patch(`/todos/${todo.id}`, { completed: true })
  await asAda.delete(`/cats/${cat.id}`)
  const second = await asAda.create('/todos', { title: 'two' })
  const again = await openEvents(`${url}/events`, { ...ada.headers, 'last-event-id': lastId })
  t.teardown(() => again.close())
  await again.until(() => again.changes().length >= 3)
  t.same(changeKeys(again), [`todo ${todo.id}`, `cat ${cat.id} deleted`, `todo ${second.id}`], 'what changed while away, once each')
  t.equal(again.changes()[0]?.data.data?.completed, true, 'in its latest state')
  await asAda.patch(`/todos/${second.id}`, { title: 'two, live' })
  await again.until(() => again.changes().length >= 4)
  t.same(changeKeys(again).slice(3), [`todo ${second.id}`], 'then live again')

  // The cursor in the URL works as Last-Event-ID does; the header wins, as a reconnect sends both.
  const viaQuery = await openEvents(`${url}/events?cursor=${encodeURIComponent(lastId)}`, ada.headers)
  t.teardown(() => viaQuery.close())
  await viaQuery.until(() => viaQuery.changes().length >= 3)
  t.same(changeKeys(viaQuery).slice(0, 3), [`todo ${todo.id}`, `cat ${cat.id} deleted`, `todo ${second.id}`])
  const both = await openEvents(`${url}/events?cursor=${encodeURIComponent(lastId)}`, { ...ada.headers, 'last-event-id': again.changes().at(-1)?.id as string })
  t.teardown(() => both.close())
  await both.until((events) => events.some((event) => event.event === 'ready'))
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(both.changes(), [], 'Last-Event-ID over ?cursor=: nothing already seen comes again')
})

t.test('GET /events refuses what GET /changes refuses, as problem+json before any event', async (t) => {
  const { http, db, url } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada, bob } = await usersWithTokens(db, ['ada', 'bob'])
  const cursor = (await http(bob.headers).get('/changes')).json() as { cursor: string }
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['/events', {}, 401, 'UNAUTHENTICATED'],
    ['/events', { authorization: 'Bearer tapi_xxx' }, 401, 'UNAUTHENTICATED'],
    ['/events?cursor=bm90IGEgY3Vyc29y', ada.headers, 400, 'INVALID_CURSOR'],
    ['/events', { ...ada.headers, 'last-event-id': 'garbage' }, 400, 'INVALID_CURSOR'],
    [`/events?cursor=${cursor.cursor}`, ada.headers, 410, 'CURSOR_EXPIRED'],
    ['/events?ticket=tev_made_up', {}, 401, 'UNAUTHENTICATED']
  ]
  for (const [path, headers, status, code] of cases) {
    const stream = await openEvents(`${url}${path}`, headers)
    await stream.ended
    expectProblem(t, { statusCode: stream.status, headers: stream.headers, json: () => JSON.parse(stream.body()) }, status, { code }, path)
  }
})

t.test('tickets: a browser opens the stream with one, good once and for a minute, never with the token in the URL', async (t) => {
  const { http, db, url, app } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada } = await usersWithTokens(db, ['ada'])
  const asAda = http(ada.headers)
  const issued = await asAda.post('/events/tickets', undefined)
  t.equal(issued.statusCode, 201)
  t.equal(issued.headers['cache-control'], 'no-store')
  const { ticket, expires_at } = issued.json() as { ticket: string; expires_at: string }
  t.match(ticket, /^tev_[A-Za-z0-9_-]{43}$/)
  t.ok(Math.abs(Date.parse(expires_at) - Date.now() - 60_000) < 10_000, 'valid for about a minute')
  const [stored] = await sql<{ n: number }>(db, 'SELECT count(*)::int AS n FROM event_tickets WHERE ticket_hash = sha256($1::bytea)', [Buffer.from(ticket)])
  t.equal(stored?.n, 1, 'stored as its SHA-256 only')

  const stream = await openEvents(`${url}/events?ticket=${ticket}`)
  t.teardown(() => stream.close())
  t.equal(stream.status, 200, 'no Authorization needed with a ticket')
  const todo = await asAda.create('/todos', { title: 'seen through a ticket' })
  await stream.until(() => stream.changes().length >= 1)
  t.equal(stream.changes()[0]?.data.id, todo.id)

  const reused = await openEvents(`${url}/events?ticket=${ticket}`)
  await reused.ended
  t.equal(reused.status, 401, 'a ticket is good once')

  const late = (await asAda.post('/events/tickets', undefined).then((answer) => answer.json())) as { ticket: string }
  await sql(db, "UPDATE event_tickets SET expires_at = now() - interval '1 second'")
  const expired = await openEvents(`${url}/events?ticket=${late.ticket}`)
  await expired.ended
  t.equal(expired.status, 401, 'and for a minute')
  t.equal(await app.inject({ method: 'POST', url: '/events/tickets' }).then((answer) => answer.statusCode), 401, 'only for a caller who proved who they are')
  for (let i = 0; i < 25; i++) await asAda.post('/events/tickets', undefined)
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM event_tickets'), [{ n: LIVE_TICKETS }], `at most ${LIVE_TICKETS} live tickets per token: asking for more drops the oldest`)
})

t.test('a revoked token ends its streams within seconds; so does its ticket', async (t) => {
  const { http, db, url } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada } = await usersWithTokens(db, ['ada'])
  const stream = await openEvents(`${url}/events`, ada.headers)
  const ticket = ((await http(ada.headers).post('/events/tickets', undefined)).json() as { ticket: string }).ticket
  const viaTicket = await openEvents(`${url}/events?ticket=${ticket}`)
  t.teardown(() => [stream, viaTicket].forEach((s) => s.close()))
  await stream.until((events) => events.some((event) => event.event === 'ready'))
  const started = Date.now()
  await sql(db, 'UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1', [ada.id])
  await Promise.all([stream.ended, viaTicket.ended])
  t.ok(Date.now() - started < 8000, `both ended ${Date.now() - started} ms after the revocation`)
})

t.test('two replicas on one database: a write on one reaches a subscriber on the other', async (t) => {
  const one = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const other = await listeningTestApp(t, { connectionString: one.db, env: { AUTH_MODE: 'required' } })
  const { ada } = await usersWithTokens(one.db, ['ada'])
  const stream = await openEvents(`${other.url}/events`, ada.headers)
  t.teardown(() => stream.close())
  await stream.until((events) => events.some((event) => event.event === 'ready'))
  const todo = await one.http(ada.headers).create('/todos', { title: 'written on one' })
  await stream.until(() => stream.changes().length >= 1, 5000)
  t.equal(stream.changes()[0]?.data.data?.title, 'written on one')
  t.equal(stream.changes()[0]?.data.id, todo.id)
})

t.test('a stream has its access line when it ends, and a ticket is never logged', async (t) => {
  const { logger, lines } = collectingLogger()
  const db = await freshDatabase(t)
  const app = await buildApp({ config: testConfig({ DATABASE_URL: db, LOG_LEVEL: 'info', AUTH_MODE: 'required' }), connectionString: db, loggerInstance: logger })
  t.teardown(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const { ada } = await usersWithTokens(db, ['ada'])
  const { ticket } = (await httpClient(url, ada.headers).post('/events/tickets', undefined)).json() as { ticket: string }
  const stream = await openEvents(`${url}/events?ticket=${ticket}&cursor=`)
  await stream.ended
  t.equal(stream.status, 400, 'an empty cursor is refused')
  const good = await openEvents(`${url}/events?tick%65t=${((await httpClient(url, ada.headers).post('/events/tickets', undefined)).json() as { ticket: string }).ticket}`)
  await good.until((events) => events.some((event) => event.event === 'ready'))
  good.close()
  const deadline = Date.now() + 5000
  while (lines.filter((line) => line.route === '/events').length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  const events = lines.filter((line) => line.route === '/events')
  t.match(events, [{ status: 400, url: '/events?[redacted]' }, { status: 200, method: 'GET', url: '/events?[redacted]', ms: Number }])
  t.notOk(JSON.stringify(lines).includes('tev_'), 'no ticket in any line')
})

t.test('through the bundled nginx (docker/nginx/nginx.conf): events and heartbeats arrive as they are written', async (t) => {
  const { http, db, app } = await listeningTestApp(t, { env: { AUTH_MODE: 'required', EVENTS_HEARTBEAT_MS: '1000' } })
  const address = app.server.address()
  const nginx = await startNginx(t, [typeof address === 'object' && address !== null ? address.port : 0])
  const { ada } = await usersWithTokens(db, ['ada'])
  const stream = await openEvents(`${nginx.url}/events`, ada.headers)
  t.teardown(() => stream.close())
  t.equal(stream.status, 200)
  await stream.until((events) => events.some((event) => event.event === 'ready'), 3000)
  const written = Date.now()
  await http(ada.headers).create('/todos', { title: 'through nginx' })
  await stream.until(() => stream.changes().length === 1, 3000)
  t.ok(Date.now() - written < 2000, `the event came through in ${Date.now() - written} ms`)
  await stream.until((events) => events.some((event) => event.comment !== undefined), 3000)
  t.pass('and the heartbeat')
})
