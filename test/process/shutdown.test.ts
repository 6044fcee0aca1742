/** The server process stopping: readiness, draining, signals and deadlines, one process and a cluster of workers. */
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import t from 'tap'
import pg from 'pg'
import { migrationFiles } from '../../src/db/migrate.js'
import { freePort, freshDatabase, sql, startServer } from '../helper.js'

const listening = /Server listening at/

/** Holds an exclusive lock on todos so that a request reading them waits, until `release`. */
async function blockTodos(db: string) {
  const client = new pg.Client({ connectionString: db })
  await client.connect()
  await client.query('BEGIN')
  await client.query('LOCK TABLE todos IN ACCESS EXCLUSIVE MODE')
  const waiting = async () => {
    for (;;) {
      const rows = await sql(db, `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'todos-api' AND wait_event_type = 'Lock'`)
      if (rows.length > 0) return
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  return { waiting, release: async () => (await client.query('COMMIT'), await client.end()) }
}

t.test('SIGTERM: readiness turns red, the request in flight completes, exit 0', async (t) => {
  const db = await freshDatabase(t)
  const server = await startServer(t, { DATABASE_URL: db, SHUTDOWN_DELAY_MS: '300' })
  await server.waitFor(listening)
  await sql(db, `INSERT INTO todos (title, owner_id) VALUES ('survives shutdown', (SELECT id FROM users WHERE builtin))`)
  const lock = await blockTodos(db)
  const inFlight = fetch(`${server.url}/todos`)
  await lock.waiting()

  server.child.kill('SIGTERM')
  await server.waitFor(/shutting down/)
  const ready = await fetch(`${server.url}/health/ready`)
  t.equal(ready.status, 503, 'readiness is red once shutdown starts')
  t.equal(ready.headers.get('content-type'), 'application/problem+json')
  t.match(await ready.json(), { code: 'SHUTTING_DOWN' })

  await new Promise((resolve) => setTimeout(resolve, 500)) // past the delay: the listener is closing
  await lock.release()
  const response = await inFlight
  t.equal(response.status, 200, 'the request that was in flight got its answer')
  t.match(await response.json(), [{ title: 'survives shutdown' }])
  t.same(await server.exited, { code: 0, signal: null })
  t.match(server.output.join('\n'), /shutdown complete/)
})

t.test('drain after SHUTDOWN_DELAY_MS: new connections refused, a request on an open connection still served, then the connection closes', async (t) => {
  const db = await freshDatabase(t)
  const server = await startServer(t, { DATABASE_URL: db, SHUTDOWN_DELAY_MS: '1500' })
  await server.waitFor(listening)
  // One kept-alive connection, as nginx holds to each replica.
  const socket = connect({ host: '127.0.0.1', port: server.port })
  await once(socket, 'connect')
  let received = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk))
  const ask = async (path: string) => {
    received = ''
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    const deadline = Date.now() + 5000
    while (!/\r\n\r\n/.test(received) || received.length < received.indexOf('\r\n\r\n') + 4 + Number(/content-length: (\d+)/i.exec(received)?.[1] ?? 0)) {
      if (Date.now() > deadline) throw new Error(`no full answer: ${received}`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    return received
  }
  t.match(await ask('/health/live'), /^HTTP\/1\.1 200[\s\S]*connection: keep-alive/i)

  server.child.kill('SIGTERM')
  await server.waitFor(/shutting down/)
  const during = await ask('/health/live')
  t.match(during, /^HTTP\/1\.1 200/, 'during the delay: served')
  t.match(during, /connection: keep-alive/i, 'and the connection is kept, so a load balancer opens no new one')
  t.equal((await fetch(`${server.url}/health/ready`)).status, 503, 'while readiness is red')

  await server.waitFor(/draining: no new connections/) // past the delay: the listener is closed
  const fresh = connect({ host: '127.0.0.1', port: server.port })
  const refused = await new Promise<string>((resolve) => {
    fresh.on('connect', () => resolve('accepted')).on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'))
  })
  fresh.destroy()
  t.equal(refused, 'ECONNREFUSED', 'a new connection is refused: nginx sends it to another replica')
  const closed = once(socket, 'close')
  const after = await ask('/todos')
  t.match(after, /^HTTP\/1\.1 200/, 'a request on the open connection is still served (not a 503)')
  t.match(after, /connection: close/i, 'and closes its connection')
  await closed
  t.same(await server.exited, { code: 0, signal: null })
})

t.test('WEB_CONCURRENCY=2: the primary migrates once, two workers share the port, SIGTERM stops them all with exit 0', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const server = await startServer(t, { DATABASE_URL: db, WEB_CONCURRENCY: '2' })
  await server.waitFor(listening)
  const pidsListening = () => new Set(server.output.filter((line) => listening.test(line)).map((line) => (JSON.parse(line) as { pid: number }).pid))
  for (let i = 0; pidsListening().size < 2 && i < 100; i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(pidsListening().size, 2, 'two workers listen')
  const applied = await sql<{ count: string }>(db, 'SELECT count(*) FROM pgmigrations')
  t.equal(Number(applied[0]?.count), (await migrationFiles()).length, 'each migration applied once, by the primary')
  for (let i = 0; i < 8; i++) t.equal((await fetch(`${server.url}/todos`, { headers: { connection: 'close' } })).status, 200)
  const served = new Set(server.output.filter((line) => /"msg":"request"/.test(line)).map((line) => (JSON.parse(line) as { pid: number }).pid))
  t.equal(served.size, 2, 'requests are spread over both workers')
  server.child.kill('SIGTERM')
  t.same(await server.exited, { code: 0, signal: null })
  t.equal(server.output.filter((line) => /shutdown complete/.test(line)).length, 3, 'both workers drained, then the primary stopped')
})

t.test('WEB_CONCURRENCY=2 on a port in use: the workers cannot listen, the primary stops with exit 1 instead of forking forever', async (t) => {
  const db = await freshDatabase(t)
  const port = await freePort()
  const blocker = createServer().listen(port, '127.0.0.1')
  await once(blocker, 'listening')
  t.teardown(() => blocker.close())
  const server = await startServer(t, { DATABASE_URL: db, WEB_CONCURRENCY: '2', PORT: String(port) })
  t.equal((await server.exited).code, 1)
  t.match(server.output.join('\n'), /a worker failed to start; stopping/)
  t.ok(server.output.filter((line) => /worker died; starting another/.test(line)).length === 0, 'no worker was forked again')
})

t.test('a second signal forces the exit while a request is stuck', async (t) => {
  const db = await freshDatabase(t)
  const server = await startServer(t, { DATABASE_URL: db })
  await server.waitFor(listening)
  const lock = await blockTodos(db)
  t.teardown(lock.release)
  const stuck = fetch(`${server.url}/todos`).catch(() => 'connection lost')
  await lock.waiting()
  server.child.kill('SIGTERM')
  await server.waitFor(/shutting down/)
  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 1)
  t.equal(await stuck, 'connection lost')
})

t.test('the grace deadline forces the exit when draining takes too long', async (t) => {
  const db = await freshDatabase(t)
  const server = await startServer(t, { DATABASE_URL: db, SHUTDOWN_GRACE_MS: '500' })
  await server.waitFor(listening)
  const lock = await blockTodos(db)
  t.teardown(lock.release)
  void fetch(`${server.url}/todos`).catch(() => {})
  await lock.waiting()
  server.child.kill('SIGINT')
  t.equal((await server.exited).code, 1)
  t.match(server.output.join('\n'), /killed by timeout/)
})
