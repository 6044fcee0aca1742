/**
 * OpenTelemetry through the real server process: spans exported over OTLP/HTTP (JSON) to a
 * receiver in the test, as a collector would get them.
 */
import { execFile } from 'node:child_process'
import { createServer } from 'node:http'
import t, { type Test } from 'tap'
import { tracingRequested } from '../../src/otel.js'
import { ROOT, freshDatabase, startServer } from '../helper.js'

interface Span {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  links?: Array<{ traceId: string; spanId: string }>
  attributes?: Array<{ key: string; value: Record<string, unknown> }>
}
const attribute = (span: Span | undefined, key: string) => {
  const value = span?.attributes?.find((entry) => entry.key === key)?.value
  return value ? Object.values(value)[0] : undefined
}

/** An OTLP/HTTP endpoint that keeps every span posted to /v1/traces. */
async function otlpReceiver(t: Test) {
  const spans: Span[] = []
  const bodies: string[] = []
  const server = createServer((request, response) => {
    let body = ''
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk))
    request.on('end', () => {
      bodies.push(body)
      if (request.url === '/v1/traces') {
        const parsed = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Span[] }> }> }
        for (const resource of parsed.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans)
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const until = async (what: string, found: () => boolean) => {
    for (let i = 0; i < 300 && !found(); i++) await new Promise((resolve) => setTimeout(resolve, 100)) // 30 s: a busy machine
    if (!found()) throw new Error(`no ${what} exported`)
  }
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, spans, bodies, until }
}

/** Tracing on, every span exported at once as OTLP/HTTP JSON to `url`. */
const exportingTo = (url: string) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: url,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  OTEL_BSP_SCHEDULE_DELAY: '100',
  OTEL_METRICS_EXPORTER: 'none',
  OTEL_LOGS_EXPORTER: 'none'
})

const TRACE = '0af7651916cd43dd8448eb211c80319c'
const PARENT = 'b7ad6b7169203331'

t.test('a span per request continuing the incoming traceparent, a child span per statement, a batch span linked to every request it serves', async (t) => {
  const receiver = await otlpReceiver(t)
  const server = await startServer(t, { DATABASE_URL: await freshDatabase(t), ...exportingTo(receiver.url) })
  await server.waitFor(/Server listening/)
  const created = await fetch(`${server.url}/todos`, { method: 'POST', headers: { 'content-type': 'application/json', traceparent: `00-${TRACE}-${PARENT}-01` }, body: '{"title":"traced"}' })
  t.equal(created.status, 201)
  const { id } = (await created.json()) as { id: number }

  await receiver.until('request span', () => receiver.spans.some((span) => span.traceId === TRACE && span.name === 'request'))
  const request = receiver.spans.find((span) => span.traceId === TRACE && span.name === 'request')
  t.equal(request?.parentSpanId, PARENT, "the client's span is the parent")
  t.equal(request?.kind, 2, 'a server span')
  t.equal(attribute(request, 'http.route'), '/todos')
  t.equal(attribute(request, 'http.response.status_code'), 201)
  t.equal(attribute(request, 'enduser.id'), '1', "the caller's user id")
  await receiver.until('statement span', () => receiver.spans.some((span) => span.traceId === TRACE && attribute(span, 'db.system.name') === 'postgresql'))
  const inTrace = receiver.spans.filter((span) => span.traceId === TRACE)
  const statement = inTrace.find((span) => span.name.startsWith('pg.query'))
  const ancestors = (span: Span | undefined): string[] => {
    const parent = inTrace.find((candidate) => candidate.spanId === span?.parentSpanId)
    return parent ? [parent.spanId, ...ancestors(parent)] : []
  }
  t.ok(ancestors(statement).includes(request?.spanId as string), `the statement (${statement?.name}) is inside the request's span`)

  // Lookups arriving together: one statement, and one span linked to each of them.
  // (Whether a burst shares a turn is up to the machine: bursts until one did.)
  for (let burst = 0; burst < 10 && !receiver.spans.some((span) => span.name === 'batch todos read'); burst++) {
    const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`${server.url}/todos/${id}`, { headers: { connection: 'close' } })))
    t.ok(answers.every((answer) => answer.status === 200))
    await new Promise((resolve) => setTimeout(resolve, 300))
  }
  await receiver.until('batch span', () => receiver.spans.some((span) => span.name === 'batch todos read'))
  await new Promise((resolve) => setTimeout(resolve, 500))
  const batch = receiver.spans.find((span) => span.name === 'batch todos read')
  const requests = receiver.spans.filter((span) => span.name === 'request' && attribute(span, 'http.route') === '/todos/:id')
  t.ok((batch?.links?.length ?? 0) >= 2, `the batch serves ${batch?.links?.length} requests`)
  t.equal(attribute(batch, 'todos_api.batch.size'), batch?.links?.length)
  // Each link is the span the lookup ran in: its request's handler span, a child of the request's.
  for (const link of batch?.links ?? []) {
    const linked = receiver.spans.find((span) => span.spanId === link.spanId)
    t.ok(requests.some((span) => span.traceId === link.traceId && (span.spanId === linked?.spanId || span.spanId === linked?.parentSpanId)), `a link to a request (${linked?.name})`)
  }
  t.equal(new Set(batch?.links?.map((link) => link.traceId)).size, batch?.links?.length, 'each of another request')
  const batchStatement = receiver.spans.find((span) => span.parentSpanId === batch?.spanId)
  t.equal(attribute(batchStatement, 'db.system.name'), 'postgresql', "the batch's statement is its child")
})

t.test('a token is never on a span; a malformed traceparent starts a new trace', async (t) => {
  const receiver = await otlpReceiver(t)
  const server = await startServer(t, { DATABASE_URL: await freshDatabase(t), ...exportingTo(receiver.url) })
  await server.waitFor(/Server listening/)
  const credentials = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"tracer@example.com","name":"T","password":"a long enough password"}' }
  t.equal((await fetch(`${server.url}/users`, credentials)).status, 201)
  const { token } = (await (await fetch(`${server.url}/tokens`, credentials)).json()) as { token: string }
  t.ok(token)
  t.equal((await fetch(`${server.url}/todos`, { headers: { authorization: `Bearer ${token}`, traceparent: 'garbage-traceparent' } })).status, 200)
  await receiver.until('request span', () => receiver.spans.some((span) => span.name === 'request' && attribute(span, 'http.route') === '/todos'))
  await new Promise((resolve) => setTimeout(resolve, 500))
  const all = receiver.bodies.join('\n')
  t.notOk(all.includes(token) || all.includes(token.slice(4, 20)), 'no part of the token is exported')
  t.notOk(all.includes('a long enough password'))
  const request = receiver.spans.find((span) => span.name === 'request' && attribute(span, 'http.route') === '/todos')
  t.notOk(request?.parentSpanId, 'a new trace: the malformed header had no effect')
  t.equal(attribute(request, 'url.path'), '/todos', 'the path, without the query string')

  // A token's lookup and the local user's in one turn are two statements (one per kind of
  // owner): each must be in its own request's trace, not in the trace of whichever
  // request scheduled the turn's batch.
  const todo = (await (await fetch(`${server.url}/todos`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: '{"title":"mine"}' })).json()) as { id: number }
  const local = (await (await fetch(`${server.url}/todos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"title":"local"}' })).json()) as { id: number }
  const traces: string[] = []
  for (let round = 0; round < 5; round++) {
    const ids = [0, 1].map((i) => `${String(round)}${String(i)}`.padStart(32, 'a'))
    traces.push(...ids)
    await Promise.all([
      fetch(`${server.url}/todos/${todo.id}?x=secret-filter`, { headers: { authorization: `Bearer ${token}`, traceparent: `00-${ids[0]}-b7ad6b7169203331-01` } }),
      fetch(`${server.url}/todos/${local.id}`, { headers: { traceparent: `00-${ids[1]}-b7ad6b7169203331-01` } })
    ])
  }
  await receiver.until('the last statement', () => receiver.spans.some((span) => span.traceId === traces.at(-1) && span.name.startsWith('pg.query')))
  await new Promise((resolve) => setTimeout(resolve, 500))
  for (const traceId of traces) {
    // The lookups of todos only: a request may run a statement of its own too (the quota
    // reads a caller's count until the first flush made it a row).
    const statements = receiver.spans.filter((span) => span.traceId === traceId && span.name.startsWith('pg.query') && String(attribute(span, 'db.query.text')).includes('"todos"'))
    t.equal(statements.length, 1, `trace ${traceId.slice(-4)}: its own lookup's statement, and no other's`)
  }
  t.notOk(receiver.bodies.join('').includes('secret-filter'), 'no query string on any span')
})

t.test('without OTEL_* settings nothing of OpenTelemetry is loaded', async (t) => {
  // The entry's modules, as server.ts loads them, in a process of their own: which
  // packages did they load, and is pg patched? (@opentelemetry/api, the no-op interface,
  // is loaded anyway: prom-client asks for it, for exemplars.)
  const script = `
    import { createRequire } from 'node:module'
    const { tracing } = await import('./dist/otel.js')
    await import('./dist/app.js')
    const require = createRequire(import.meta.url)
    const loaded = Object.keys(require.cache).filter((path) => /@opentelemetry[\\/](?!api[\\/])|@fastify[\\/]otel/.test(path))
    const pg = require('pg')
    console.log(JSON.stringify({ tracing: tracing !== undefined, loaded: loaded.length, patched: pg.Client.prototype.query.__wrapped === true }))`
  const run = (env: Record<string, string>) =>
    new Promise<{ tracing: boolean; loaded: number; patched: boolean }>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, env: { PATH: process.env.PATH, ...env } }, (error, stdout) => (error ? reject(error) : resolve(JSON.parse(stdout))))
    })
  t.same(await run({}), { tracing: false, loaded: 0, patched: false }, 'off: no OpenTelemetry package loaded, pg as it is')
  t.same(await run({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', OTEL_SDK_DISABLED: 'true' }), { tracing: false, loaded: 0, patched: false }, 'OTEL_SDK_DISABLED wins')
  const on = await run({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none' })
  t.ok(on.tracing && on.loaded > 0 && on.patched, `on: loaded, and pg patched (${JSON.stringify(on)})`)
  t.notOk(tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' }))
  t.ok(tracingRequested({ OTEL_TRACES_EXPORTER: 'console' }))
})
