import { Agent, get } from 'node:http'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
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

t.test('a client that stops reading gets `resync` and is closed; what is buffered for it stays bounded', async (t) => {
  const { app, http, db, url } = await listeningTestApp(t, { env: { AUTH_MODE: 'required', EVENTS_BUFFER_BYTES: '65536' } })
  const { ada } = await usersWithTokens(db, ['ada'])
  const stream = await openEvents(`${url}/events`, ada.headers)
  t.teardown(() => stream.close())
  await stream.until((events) => events.some((event) => event.event === 'ready'))
  stream.pause()
  // About 15 MB of events, far more than the socket's buffers take.
  const title = 'x'.repeat(480)
  for (let i = 0; i < 3; i++) await sql(db, `INSERT INTO todos (owner_id, title) SELECT $1, $2 || n FROM generate_series(1, 5000) n`, [ada.id, title])
  const deadline = Date.now() + 30_000
  while (app.events.streams > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(app.events.streams, 0, 'the stream was dropped')
  stream.resume()
  await stream.ended
  const last = stream.events.filter((event) => event.comment === undefined).at(-1)
  t.equal(last?.event, 'resync', 'its last event is resync')
  t.match(JSON.parse(last?.data ?? '{}'), { cursor: String }, 'with the cursor to carry on from with GET /changes')
  t.ok(stream.changes().length < 15_000, `${stream.changes().length} of 15000 changes were sent before it`)
  t.ok(app.events.peakBuffered < 65_536 + 2000, `peak buffered ${app.events.peakBuffered} bytes: the limit and one event`)
  const carryOn = await http(ada.headers).get(`/changes?cursor=${encodeURIComponent(JSON.parse(last?.data ?? '{}').cursor)}&limit=1`)
  t.equal(carryOn.statusCode, 200, 'the resync cursor is good for GET /changes')
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

t.test('draining ends every stream with a retry hint; a stream asked for then is handed on at once, its connection closed', async (t) => {
  const { app, db, url } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada } = await usersWithTokens(db, ['ada'])
  const stream = await openEvents(`${url}/events`, ada.headers)
  await stream.until((events) => events.some((event) => event.event === 'ready'))
  // A connection kept alive from before the drain: the only way a request reaches a draining instance.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  await new Promise((resolve) => get(`${url}/health/live`, { agent }, (response) => response.resume().on('end', resolve)))
  app.shutdown.begin()
  const meanwhile = await openEvents(`${url}/events`, ada.headers)
  await meanwhile.until((events) => events.some((event) => event.event === 'ready'))
  t.pass('once readiness is red, and until the drain, streams open as usual (the load balancer still sends some)')
  const drained = app.shutdown.drain(app.server, 5000)
  await Promise.all([stream.ended, meanwhile.ended])
  t.same(stream.events.at(-1), { retry: 1000 }, 'a retry hint last')
  t.same(meanwhile.events.at(-1), { retry: 1000 })
  const late = await openEvents(`${url}/events`, ada.headers, agent)
  await late.ended
  t.equal(late.headers.connection, 'close', 'a stream asked for while draining is not kept alive')
  t.same(late.events, [{ retry: 1000 }], 'and carries only the hint')
  await drained
  t.pass('the drain did not wait for the streams')
})

t.test('EVENTS_MAX_STREAMS: past it, 503 with Retry-After', async (t) => {
  const { db, url } = await listeningTestApp(t, { env: { AUTH_MODE: 'required', EVENTS_MAX_STREAMS: '1' } })
  const { ada } = await usersWithTokens(db, ['ada'])
  const first = await openEvents(`${url}/events`, ada.headers)
  t.teardown(() => first.close())
  const second = await openEvents(`${url}/events`, ada.headers)
  await second.ended
  t.equal(second.status, 503)
  t.equal(second.headers['retry-after'], '5')
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

t.test('a client that leaves while its stream is being opened leaves nothing registered', async (t) => {
  const { app, db, url } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada } = await usersWithTokens(db, ['ada'])
  const port = Number(new URL(url).port)
  // Each asks, then hangs up 1 to 191 ms later: some while their first statements run.
  await Promise.all(
    Array.from({ length: 80 }, (_, i) =>
      new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${ada.headers.authorization}\r\n\r\n`)
          setTimeout(() => socket.destroy(), 1 + (i % 20) * 10)
        })
        socket.on('error', () => {})
        socket.on('close', () => resolve())
      })
    )
  )
  const deadline = Date.now() + 5000
  while (app.events.streams > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(app.events.streams, 0, 'no stream is left for a client that left')
})

t.test('a reconnect from the ready event of a resumed stream misses nothing; the listener reconnects by itself', async (t) => {
  const { app, http, db, url } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada } = await usersWithTokens(db, ['ada'])
  const asAda = http(ada.headers)
  const { cursor } = (await asAda.get('/changes')).json() as { cursor: string }
  for (const title of ['a', 'b', 'c']) await asAda.create('/todos', { title })
  const resumed = await openEvents(`${url}/events`, { ...ada.headers, 'last-event-id': cursor })
  const [, ready] = await resumed.until((events) => events.length >= 2)
  resumed.close()
  t.equal(ready?.id, cursor, "a resumed stream's ready carries the cursor it resumed from")
  const again = await openEvents(`${url}/events`, { ...ada.headers, 'last-event-id': ready?.id as string })
  t.teardown(() => again.close())
  await again.until(() => again.changes().length >= 3)
  t.same(again.changes().map((change) => change.data.data?.title), ['a', 'b', 'c'], 'the three changes, from the ready event on')

  // The listener's session is killed: the stream is still served, within the sweeps it takes to notice and reconnect.
  const [killed] = await sql<{ n: number }>(db, "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'todos-api events'")
  t.equal(killed?.n, 1, 'one listener, killed')
  await asAda.create('/todos', { title: 'after the listener died' })
  await again.until(() => again.changes().length >= 4, 10_000)
  t.equal(again.changes()[3]?.data.data?.title, 'after the listener died')
  t.equal(app.events.streams, 1)
})

t.test('EVENTS_MAX_STREAMS holds when many streams are asked for at once', async (t) => {
  const { app, db, url } = await listeningTestApp(t, { env: { AUTH_MODE: 'required', EVENTS_MAX_STREAMS: '5' } })
  const users = await usersWithTokens(db, ['u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7', 'u8'])
  const streams = await Promise.all(Object.values(users).flatMap((user) => Array.from({ length: 5 }, () => openEvents(`${url}/events`, user.headers))))
  t.teardown(() => streams.forEach((stream) => stream.close()))
  t.equal(streams.filter((stream) => stream.status === 200).length, 5, 'five of forty opened')
  t.ok(streams.filter((stream) => stream.status !== 200).every((stream) => stream.status === 503), 'the rest: 503')
  t.equal(app.events.streams, 5)
})

/** A TCP proxy whose connections can be made to go silent (nothing passes, nothing is closed), as when a NAT forgets them. */
async function silenceableProxy(t: Test, target: URL) {
  const pairs: Array<[Socket, Socket]> = []
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname)
    client.pipe(upstream).pipe(client)
    for (const socket of [client, upstream]) socket.on('error', () => {})
    pairs.push([client, upstream])
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const pair of pairs) pair.forEach((socket) => socket.destroy())
    server.close()
  })
  return {
    url: (database: string) => Object.assign(new URL(database), { host: `127.0.0.1:${(server.address() as AddressInfo).port}` }).toString(),
    silence() {
      for (const [client, upstream] of pairs.splice(0)) {
        client.unpipe(upstream)
        upstream.unpipe(client)
        client.pause()
        upstream.pause()
      }
    }
  }
}

t.test('a listener connection that goes silent is noticed and replaced, and the streams are fed meanwhile', async (t) => {
  const db = await freshDatabase(t)
  const proxy = await silenceableProxy(t, new URL(db))
  const direct = proxy.url(db)
  const app = await buildApp({ config: testConfig({ DATABASE_URL: db, MIGRATION_DATABASE_URL: direct, AUTH_MODE: 'required' }), connectionString: db, migrationConnectionString: direct, logger: false })
  t.teardown(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const { ada } = await usersWithTokens(db, ['ada'])
  const stream = await openEvents(`${url}/events`, ada.headers)
  t.teardown(() => stream.close())
  await stream.until((events) => events.some((event) => event.event === 'ready'))
  proxy.silence()
  const written = Date.now()
  await httpClient(url, ada.headers).create('/todos', { title: 'while the listener hears nothing' })
  await stream.until(() => stream.changes().length === 1, 15_000)
  t.ok(Date.now() - written < 12_000, `pushed ${Date.now() - written} ms after the write, without the notification`)
  const [listeners] = await sql<{ n: number }>(db, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'todos-api events' AND state = 'idle'")
  t.ok((listeners?.n ?? 0) >= 1, 'a new listener is connected')
  const again = Date.now()
  await httpClient(url, ada.headers).create('/todos', { title: 'heard again' })
  await stream.until(() => stream.changes().length === 2, 3000)
  t.ok(Date.now() - again < 1500, `then notifications again (${Date.now() - again} ms)`)
})
