/**
 * GET /events at its limits: a client that cannot keep up, a draining instance, too many
 * streams, clients that leave half-way, and a listener connection that fails or goes silent.
 */
import { Agent, get } from 'node:http'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { freshDatabase, listeningTestApp, sql, testConfig, usersWithTokens } from '../helper.js'
import { openEvents } from '../support/events.js'
import { httpClient } from '../support/http.js'

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
