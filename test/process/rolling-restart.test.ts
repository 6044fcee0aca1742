/**
 * The rolling restart of the README's "Scaling out": Debian's nginx running
 * docker/nginx/nginx.conf in front of two replicas, under steady load of reads and writes;
 * each replica in turn gets SIGTERM, drains, exits 0 and starts again. Every request the
 * clients sent must get a 2xx, and a client following GET /events (reconnecting with
 * Last-Event-ID, as EventSource does) must see every todo created.
 */
import t from 'tap'
import { freshDatabase, insertTodos, sql, startServer, type ServerProcess } from '../helper.js'
import { waitReady } from '../support/processes.js'
import { openEvents, type EventStream } from '../support/events.js'
import { startNginx } from '../support/nginx.js'
import { freePort } from '../support/ports.js'

/** The recipe's numbers: nginx keeps idle upstream connections 4 s (< the delay) and skips a refusing replica for 5 s. */
const SHUTDOWN_DELAY_MS = 5000
const FAIL_TIMEOUT_MS = 5000

t.test('a rolling restart of two replicas behind nginx fails no request', async (t) => {
  const db = await freshDatabase(t)
  await insertTodos(db, 200, { title: "'todo ' || i" })
  const env = { DATABASE_URL: db, MIGRATE_ON_START: 'false', LOG_LEVEL: 'warn', SHUTDOWN_DELAY_MS: String(SHUTDOWN_DELAY_MS) }
  const ports = [await freePort(), await freePort()]
  const replicas: ServerProcess[] = await Promise.all(ports.map((port) => startServer(t, { ...env, PORT: String(port) })))
  await Promise.all(replicas.map((replica) => waitReady(replica.url)))
  const nginx = await startNginx(t, ports)

  // Steady load: eight clients, each sending one request after another with a 20 ms pause
  // (a few hundred requests a second, not all the machine can do: the rest of the suite
  // runs meanwhile): reads by id, list pages, creates (POST, which nginx never repeats
  // once sent) and edits (PATCH, likewise).
  const statuses = new Map<number, number>()
  const failures: string[] = []
  let sent = 0
  let created = 0
  let running = true
  const client = async (n: number) => {
    for (let i = 0; running; i++) {
      const id = 1 + ((n * 7919 + i * 104_729) % 200)
      const [method, path, body] = (
        [
          ['GET', `/todos/${id}`, undefined],
          ['GET', '/todos?limit=20', undefined],
          ['POST', '/todos', { title: `load ${n}.${i}` }],
          ['PATCH', `/todos/${id}`, { completed: i % 2 === 0 }]
        ] as const
      )[i % 4] as readonly [string, string, object | undefined]
      sent++
      try {
        const response = await fetch(`${nginx.url}${path}`, {
          method,
          headers: body ? { 'content-type': 'application/json' } : {},
          body: body ? JSON.stringify(body) : undefined,
          signal: AbortSignal.timeout(15_000)
        })
        const text = await response.text()
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
        if (method === 'POST' && response.status === 201) {
          created++
          createdIds.add((JSON.parse(text) as { id: number }).id)
        }
        if (response.status >= 300) failures.push(`${method} ${path}: ${response.status}`)
      } catch (error) {
        failures.push(`${method} ${path}: ${(error as Error).message}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  const load = Promise.all(Array.from({ length: 8 }, (_, n) => client(n)))

  // A follower of GET /events through nginx: when a stream ends, it reconnects after the
  // `retry:` it was given, from the id of the last event it got.
  const createdIds = new Set<number>()
  const pushedIds = new Set<number>()
  const streamStatuses: number[] = []
  let following = true
  let current: EventStream | undefined
  const follower = (async () => {
    let lastId: string | undefined
    let retry = 1000
    while (following) {
      const stream = (current = await openEvents(`${nginx.url}/events`, lastId ? { 'last-event-id': lastId } : {}))
      streamStatuses.push(stream.status)
      const seen = () => {
        for (const event of stream.events) {
          if (event.retry !== undefined) retry = event.retry
          if (event.id !== undefined) lastId = event.id
          if (event.event === 'change') pushedIds.add((JSON.parse(event.data as string) as { id: number }).id)
        }
      }
      await stream.ended
      seen()
      if (following) await new Promise((resolve) => setTimeout(resolve, retry))
    }
  })()

  await new Promise((resolve) => setTimeout(resolve, 1000))
  for (const [index, port] of ports.entries()) {
    const old = replicas[index] as ServerProcess
    const before = sent
    old.child.kill('SIGTERM')
    const { code } = await old.exited
    t.equal(code, 0, `replica ${index + 1} drained and exited 0 (${sent - before} requests meanwhile)`)
    const restarted = await startServer(t, { ...env, PORT: String(port) })
    replicas[index] = restarted
    await waitReady(restarted.url)
    // nginx tries a replica that refused a connection again after fail_timeout: only then
    // is it back in the rotation, and only then may the other one go.
    await new Promise((resolve) => setTimeout(resolve, FAIL_TIMEOUT_MS + 500))
  }
  running = false
  await load
  // The follower catches up on the stream it holds now, then stops.
  const caughtUp = Date.now() + 10_000
  while (Date.now() < caughtUp && [...createdIds].some((id) => !pushedIds.has(id) && !current?.events.some((event) => event.event === 'change' && JSON.parse(event.data as string).id === id))) {
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  following = false
  current?.close()
  await follower

  const summary = [...statuses].map(([status, count]) => `${status}: ${count}`).join(', ')
  t.comment(`${sent} requests through nginx during two restarts (${summary})`)
  t.same(failures, [], 'every request got a 2xx', { nginx: nginx.output.filter((line) => line.trim() !== '').slice(-20) })
  t.ok(sent > 2000, `steady load (${sent} requests)`)
  const [{ count } = { count: "" }] = await sql<{ count: string }>(db, "SELECT count(*) FROM todos WHERE title LIKE 'load %'")
  t.equal(Number(count), created, 'each 201 to a POST is one row: nothing was applied twice or lost')
  // Two streams at least: one restart ended the first. Three when nginx first sent the
  // follower to the replica restarted first (which one it picks is nginx's round robin).
  t.ok(streamStatuses.length >= 2 && streamStatuses.every((status) => status === 200), `the follower's streams: ${streamStatuses.join(', ')} (one per replica it was on)`)
  t.same([...createdIds].filter((id) => !pushedIds.has(id)), [], `every created todo was pushed to the follower (${createdIds.size}), across both restarts`)
})
