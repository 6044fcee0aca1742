/**
 * Sync and push (part of `make bench`), on the compiled service at production settings:
 * - push: 2 000 GET /events streams on one instance (1 000 users, two streams each, as a
 *   phone and a laptop), with POST /todos at a steady 200/s spread over those users; the
 *   latency from sending a write to each of its two events arriving (p50, p99), every
 *   event counted (none lost, none twice), and the instance's RSS. Goals: p99 <= 100 ms,
 *   RSS <= 250 MiB, no event lost or duplicated.
 * - paging: 100 000 todos read whole through GET /changes (a first sync) and GET /todos
 *   (following Link), then 100 000 changes through GET /changes?cursor=, pages of 1 000.
 */
import http from 'node:http'
import { withClient } from '../src/db/client.js'
import { newToken } from '../src/accounts/tokens.js'
import { freePort } from '../test/support/ports.js'
import { ROOT, ROWS, benchDatabase, median, rssMiB, sh, start, startArgs, stopAll } from './lib.js'

const USERS = 1000
const STREAMS_PER_USER = 2
const WRITES_PER_SECOND = 200
const WRITE_SECONDS = Number(process.env.BENCH_SYNC_SECONDS ?? 20)

if (!process.argv.includes('--no-build')) await sh('npm', ['run', 'build'], { cwd: ROOT })
const database = await benchDatabase('bench-sync')
const port = await freePort()
const server = await start('service', await startArgs(), { NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), DATABASE_URL: database.url, LOG_LEVEL: 'warn', METRICS_PORT: '0' }, port)
const base = `http://127.0.0.1:${port}`
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((values.length * p) / 100))] ?? 0
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })

/** One request, its status and body. */
function request(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request(`${base}${path}`, { method, agent, headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

async function push() {
  // 1 000 users with a token each, made in one statement.
  const tokens = Array.from({ length: USERS }, () => newToken())
  await withClient(database.url, async (client) => {
    await client.query(
      `WITH u AS (INSERT INTO users (email, name) SELECT 'bench' || i || '@example.com', 'bench ' || i FROM generate_series(1, $1::int) i RETURNING id, name)
       INSERT INTO api_tokens (user_id, name, token_hash, prefix) SELECT u.id, 'bench', t.hash, 't' FROM u JOIN unnest($2::bytea[]) WITH ORDINALITY t(hash, n) ON u.name = 'bench ' || t.n`,
      [USERS, tokens.map((token) => token.hash)]
    )
  })
  const rssBefore = await rssMiB(server.pid as number)
  const sent = new Map<string, number>()
  const latencies: number[] = []
  const received = new Map<string, number>()
  let duplicates = 0
  const streams: http.ClientRequest[] = []
  // Every stream of every user, opened a few at a time.
  const open = (token: string, stream: number) =>
    new Promise<void>((resolve, reject) => {
      const req = http.get(`${base}/events`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`GET /events: ${res.statusCode}`))
        res.setEncoding('utf8')
        let text = ''
        res.on('data', (chunk: string) => {
          text += chunk
          let end: number
          while ((end = text.indexOf('\n\n')) >= 0) {
            const event = text.slice(0, end)
            text = text.slice(end + 2)
            if (event.startsWith('event: ready') || event.includes('\nevent: ready')) resolve()
            const data = /^data: (.*)$/m.exec(event)?.[1]
            if (!event.includes('event: change') || data === undefined) continue
            const title = (JSON.parse(data) as { data: { title: string } }).data.title
            const key = `${title} ${stream}`
            const count = (received.get(key) ?? 0) + 1
            received.set(key, count)
            if (count > 1) duplicates++
            else latencies.push(performance.now() - (sent.get(title) as number))
          }
        })
      })
      req.on('error', reject)
      streams.push(req)
    })
  const started = performance.now()
  for (let i = 0; i < USERS; i += 10) await Promise.all(tokens.slice(i, i + 10).flatMap((token) => Array.from({ length: STREAMS_PER_USER }, (_, s) => open(token.secret, s))))
  const openSeconds = (performance.now() - started) / 1000
  const rssOpen = await rssMiB(server.pid as number)

  let rssPeak = rssOpen
  // Writes not answered 201, by status and problem code: their events are not expected.
  const failures = new Map<string, number>()
  const writes: Array<Promise<unknown>> = []
  const total = WRITES_PER_SECOND * WRITE_SECONDS
  const begin = performance.now()
  for (let n = 0; n < total; n++) {
    // A steady rate: each write at its own time, whatever the previous ones took.
    const due = begin + (n * 1000) / WRITES_PER_SECOND
    const wait = due - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    const title = `w${n}`
    sent.set(title, performance.now())
    writes.push(request('POST', '/todos', (tokens[n % USERS] as { secret: string }).secret, { title }).then((answer) => {
        if (answer.status === 201) return
        const outcome = `${answer.status} ${/"code":"(\w+)"/.exec(answer.body)?.[1] ?? ''}`.trim()
        failures.set(outcome, (failures.get(outcome) ?? 0) + 1)
      })
    )
    if (n % WRITES_PER_SECOND === 0) rssPeak = Math.max(rssPeak, await rssMiB(server.pid as number))
  }
  await Promise.all(writes)
  const failed = [...failures.values()].reduce((sum, count) => sum + count, 0)
  const expected = (total - failed) * STREAMS_PER_USER
  const deadline = performance.now() + 10_000
  while (latencies.length < expected && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  rssPeak = Math.max(rssPeak, await rssMiB(server.pid as number))
  for (const stream of streams) stream.destroy()
  const lost = Math.max(0, expected - latencies.length)
  return [
    `${USERS * STREAMS_PER_USER} streams (${USERS} users × ${STREAMS_PER_USER}), opened in ${openSeconds.toFixed(1)} s; POST /todos at ${WRITES_PER_SECOND}/s for ${WRITE_SECONDS} s (${total} writes, ${failed} not answered 201${failed > 0 ? `: ${[...failures].map(([outcome, count]) => `${count} × ${outcome}`).join(', ')}` : ''})`,
    '',
    '| figure | value | goal |',
    '| --- | --- | --- |',
    `| write sent → event received, p50 | ${percentile(latencies, 50).toFixed(1)} ms | |`,
    `| write sent → event received, p99 | ${percentile(latencies, 99).toFixed(1)} ms | ≤ 100 ms |`,
    `| write sent → event received, max | ${Math.max(...latencies).toFixed(1)} ms | |`,
    `| events expected / received / lost / twice | ${expected} / ${latencies.length} / ${lost} / ${duplicates} | none lost or twice |`,
    `| RSS: idle / 2 000 streams open / peak under writes | ${rssBefore} / ${rssOpen} / ${rssPeak} MiB | ≤ 250 MiB |`
  ].join('\n')
}

/** Pages through `first` and its successors, as a client does: seconds taken, pages, items. */
async function pageThrough(token: string, first: string, next: (answer: { body: string; headers: http.IncomingHttpHeaders }) => string | undefined, count: (body: string) => number) {
  const started = performance.now()
  let pages = 0
  let items = 0
  let times: number[] = []
  for (let path: string | undefined = first; path !== undefined; ) {
    const t0 = performance.now()
    const answer = await request('GET', path, token)
    times.push(performance.now() - t0)
    if (answer.status !== 200) throw new Error(`${path}: ${answer.status} ${answer.body.slice(0, 200)}`)
    pages++
    items += count(answer.body)
    path = next(answer)
  }
  return { seconds: (performance.now() - started) / 1000, pages, items, medianMs: median(times), lastMs: times.at(-1) ?? 0 }
}

async function paging() {
  const token = database.token
  const changes = (cursor: string | undefined) => `/changes?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`
  let cursor: string | undefined
  const fromChanges = await pageThrough(token, changes(undefined), (answer) => {
    const page = JSON.parse(answer.body) as { cursor: string; more: boolean }
    cursor = page.cursor
    return page.more ? changes(page.cursor) : undefined
  }, (body) => (JSON.parse(body) as { changes: unknown[] }).changes.length)
  const fromList = await pageThrough(token, '/todos?limit=1000', (answer) => {
    const link = /<([^>]+)>; rel="next"/.exec(String(answer.headers.link ?? ''))?.[1]
    return link ? new URL(link).pathname + new URL(link).search : undefined
  }, (body) => (JSON.parse(body) as unknown[]).length)
  // 100 000 changes since the cursor: every todo updated, in one statement.
  await withClient(database.url, (client) => client.query("UPDATE todos SET title = title || ' ·' WHERE owner_id = (SELECT id FROM users WHERE builtin)"))
  const delta = await pageThrough(token, changes(cursor), (answer) => {
    const page = JSON.parse(answer.body) as { cursor: string; more: boolean }
    return page.more ? changes(page.cursor) : undefined
  }, (body) => (JSON.parse(body) as { changes: unknown[] }).changes.length)
  const row = (name: string, run: Awaited<ReturnType<typeof pageThrough>>) =>
    `| ${name} | ${run.items} | ${run.pages} | ${run.seconds.toFixed(2)} s | ${run.medianMs.toFixed(0)} ms | ${run.lastMs.toFixed(0)} ms |`
  return [
    `${ROWS} todos of one user, pages of 1 000, one client, one page at a time`,
    '',
    '| read | items | pages | total | page, median | last page |',
    '| --- | --- | --- | --- | --- | --- |',
    row('GET /todos, following Link', fromList),
    row('GET /changes, first sync (the whole state)', fromChanges),
    row('GET /changes?cursor=, 100 000 changes', delta)
  ].join('\n')
}

try {
  console.log(`## Push\n\n${await push()}\n\n## Paging\n\n${await paging()}`)
} finally {
  await stopAll([server])
  await database.close()
}
