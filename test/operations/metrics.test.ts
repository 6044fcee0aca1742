import { request as httpRequest } from 'node:http'
import t from 'tap'
import { buildTestApp, freePort, freshDatabase, startServer } from '../helper.js'
import { parseSamples, sampleSum, startPrometheus, type Sample } from '../support/prometheus.js'

const DURATION = 'http_server_request_duration_seconds_count'
const scrape = async (app: { metrics: { registry: { metrics(): Promise<string> } } }): Promise<Sample[]> => parseSamples(await app.metrics.registry.metrics())

t.test('each request is counted by method, route pattern and status, never by its URL', async (t) => {
  const { app, api } = await buildTestApp(t, { env: { METRICS_PORT: '9999' } })
  const todo = await api.create('/todos', { title: 'counted' })
  for (let i = 0; i < 3; i++) t.equal((await api.get(`/todos/${todo.id}`)).statusCode, 200)
  t.equal((await api.get('/todos/999999')).statusCode, 404)
  t.equal((await api.get('/no/such/path/12345')).statusCode, 404)
  t.equal((await api.get('/todos', { authorization: 'Bearer not-a-token' })).statusCode, 401)
  t.equal((await api.get('/todos/%E0%A4%A')).statusCode, 400, "the router's own answer, before any hook")

  const samples = await scrape(app)
  t.equal(sampleSum(samples, DURATION, { http_request_method: 'GET', http_route: '/todos/:id', http_response_status_code: '200' }), 3)
  t.equal(sampleSum(samples, DURATION, { http_request_method: 'GET', http_route: '/todos/:id', http_response_status_code: '404' }), 1)
  t.equal(sampleSum(samples, DURATION, { http_request_method: 'POST', http_route: '/todos', http_response_status_code: '201' }), 1)
  t.equal(sampleSum(samples, DURATION, { http_route: 'unmatched', http_response_status_code: '404' }), 1, 'an unknown path is one label value')
  t.equal(sampleSum(samples, DURATION, { http_route: 'unmatched', http_response_status_code: '400' }), 1, 'a URL the router cannot decode is counted too')
  t.notOk(samples.some((sample) => Object.values(sample.labels).some((value) => value.includes('12345') || value.includes('999999'))), 'no raw URL in any label')
  t.equal(sampleSum(samples, 'http_server_request_duration_seconds_bucket', { http_route: '/todos/:id', http_response_status_code: '200', le: '+Inf' }), 3)
  t.equal(sampleSum(samples, 'http_server_active_requests'), 0, 'nothing in flight once answered')
  t.equal(sampleSum(samples, 'todos_api_auth_failures_total', { reason: 'malformed_token' }), 1)

  t.ok(sampleSum(samples, 'db_client_operation_duration_seconds_count', { db_query_summary: 'SELECT todos' }) >= 4, 'statements by summary')
  t.ok(sampleSum(samples, 'db_client_operation_duration_seconds_count', { db_query_summary: 'INSERT todos' }) >= 1)
  t.equal(sampleSum(samples, 'todos_api_batch_size_count', { resource: 'todos', operation: 'read' }), 4, 'each lookup went through the batching seam')
  t.ok(sampleSum(samples, 'db_client_connection_count', { db_client_connection_state: 'idle' }) >= 1)
  t.equal(sampleSum(samples, 'db_client_connection_max'), 10)
  t.equal(sampleSum(samples, 'db_client_connection_pending_requests'), 0)
  t.ok(samples.some((sample) => sample.name === 'nodejs_eventloop_lag_p99_seconds'), 'the process figures too')
  t.ok(samples.some((sample) => sample.name === 'process_cpu_seconds_total'))
})

t.test('idempotent replays, readiness and 503s by code are counted', async (t) => {
  const { app, api } = await buildTestApp(t, { env: { METRICS_PORT: '9999' } })
  const headers = { 'idempotency-key': 'metrics-1' }
  t.equal((await api.post('/todos', { title: 'once' }, headers)).statusCode, 201)
  t.equal((await api.post('/todos', { title: 'once' }, headers)).statusCode, 201)
  t.equal((await api.post('/todos', { title: 'another' }, headers)).statusCode, 422)
  t.equal((await api.get('/health/ready')).statusCode, 200)
  app.shutdown.begin()
  t.equal((await api.get('/health/ready')).statusCode, 503)

  const samples = await scrape(app)
  t.equal(sampleSum(samples, 'todos_api_idempotency_requests_total', { outcome: 'created' }), 1)
  t.equal(sampleSum(samples, 'todos_api_idempotency_requests_total', { outcome: 'replayed' }), 1)
  t.equal(sampleSum(samples, 'todos_api_idempotency_requests_total', { outcome: 'reused' }), 1)
  t.equal(sampleSum(samples, 'todos_api_readiness_check', { check: 'database' }), 1)
  t.equal(sampleSum(samples, 'todos_api_readiness_check', { check: 'migrations' }), 1)
  t.equal(sampleSum(samples, 'todos_api_unavailable_responses_total', { http_response_status_code: '503', code: 'SHUTTING_DOWN' }), 1)
  // Nothing was shed, and each limit's series is there already, at 0, for rate() to start from.
  t.same(
    samples.filter((sample) => sample.name === 'todos_api_shed_total').map((sample) => [sample.labels.reason, sample.value]),
    ['database_queue', 'database_wait', 'in_flight', 'event_loop'].map((reason) => [reason, 0])
  )
})

t.test('METRICS_PORT=0: no request is timed, and nothing is collected for nobody', async (t) => {
  const { app, api } = await buildTestApp(t)
  await api.get('/todos')
  const samples = await scrape(app)
  t.equal(sampleSum(samples, DURATION), 0)
  t.notOk(samples.some((sample) => sample.name.startsWith('nodejs_')))
})

t.test('a request whose client left before the answer is counted once (499) and leaves nothing in flight', async (t) => {
  const { app } = await buildTestApp(t, { env: { METRICS_PORT: '9999', DATABASE_POOL_MAX: '1' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  // The pool's one connection held: the request waits for it, and its client gives up.
  const held = await app.pg.pool.connect()
  const request = httpRequest({ port, path: '/todos', host: '127.0.0.1' })
  request.on('error', () => {})
  request.end()
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(sampleSum(await scrape(app), 'http_server_active_requests'), 1, 'in flight')
  request.destroy()
  await new Promise((resolve) => setTimeout(resolve, 100))
  held.release()
  let samples: Sample[] = []
  for (let tries = 0; tries < 50 && sampleSum(samples, DURATION) === 0; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    samples = await scrape(app)
  }
  t.equal(sampleSum(samples, 'http_server_active_requests'), 0)
  t.equal(sampleSum(samples, DURATION, { http_route: '/todos' }), 1)
  t.equal(sampleSum(samples, DURATION, { http_route: '/todos', http_response_status_code: '499' }), 1)
})

t.test('the metrics listener is the operators\': its own port, /metrics only, not on the API port', async (t) => {
  const metricsPort = await freePort()
  const server = await startServer(t, { DATABASE_URL: await freshDatabase(t), METRICS_PORT: String(metricsPort) })
  await server.waitFor(/Server listening/)
  t.equal((await fetch(`${server.url}/todos`)).status, 200)
  const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const samples = parseSamples(await response.text())
  t.equal(sampleSum(samples, DURATION, { http_route: '/todos', http_response_status_code: '200' }), 1)
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/`)).status, 404)
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST' })).status, 405)
  t.equal((await fetch(`${server.url}/metrics`)).status, 404, 'a client of the API cannot read them')
})

t.test('Prometheus scrapes the sum over every worker (WEB_CONCURRENCY=2), and a replaced worker does not make counters go down', async (t) => {
  const metricsPort = await freePort()
  const server = await startServer(t, { DATABASE_URL: await freshDatabase(t), METRICS_PORT: String(metricsPort), WEB_CONCURRENCY: '2' })
  await server.waitFor(/started 2 workers/)
  while (server.output.filter((line) => /Server listening/.test(line)).length < 2) await new Promise((resolve) => setTimeout(resolve, 100))
  const todo = (await (await fetch(`${server.url}/todos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"title":"scraped"}' })).json()) as { id: number }
  // A connection each: node:cluster hands connections to the workers in turn, so both serve.
  const N = 20
  for (let i = 0; i < N; i++) t.equal((await fetch(`${server.url}/todos/${todo.id}`, { headers: { connection: 'close' } })).status, 200)

  const direct = parseSamples(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())
  t.equal(sampleSum(direct, DURATION, { http_route: '/todos/:id', http_response_status_code: '200' }), N, 'the sum over both workers')
  t.equal(sampleSum(direct, 'todos_api_readiness_check'), 0, 'no check reported before any probe')

  const prometheus = await startPrometheus(t, [`127.0.0.1:${metricsPort}`])
  let count: number | undefined
  for (let tries = 0; tries < 180 && count !== N; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 500))
    const [result] = await prometheus.query(`sum(http_server_request_duration_seconds_count{http_route="/todos/:id",http_response_status_code="200"})`)
    count = result ? Number(result.value[1]) : undefined
  }
  t.equal(count, N, 'PromQL counts the requests the test made')
  const [p99] = await prometheus.query(`histogram_quantile(0.99, sum by (le) (http_server_request_duration_seconds_bucket{http_route="/todos/:id"}))`)
  const quantile = Number(p99?.value[1])
  t.ok(quantile > 0 && quantile <= 10, `a latency quantile for /todos/:id (${quantile} s)`)

  // Kill a worker: the primary starts another, and the sum keeps what the dead one counted.
  const before = sampleSum(parseSamples(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()), DURATION)
  const workers = await childPids(server.child.pid as number)
  process.kill(workers[0] as number, 'SIGKILL')
  await server.waitFor(/worker died; starting another/)
  await new Promise((resolve) => setTimeout(resolve, 300))
  const after = sampleSum(parseSamples(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()), DURATION)
  t.ok(after >= before, `the counters did not go down (${before} then ${after})`)
})

async function childPids(pid: number): Promise<number[]> {
  const { readFile } = await import('node:fs/promises')
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')
  return children.trim().split(/\s+/).filter(Boolean).map(Number)
}

t.test('a histogram past its series limit counts the rest as one `other` series', async (t) => {
  const { LabelledHistogram } = await import('../../src/lib/histogram.js')
  const histogram = new LabelledHistogram('h', 'help', ['a'], [1], 2)
  for (const value of ['x', 'y', 'z', 'w']) histogram.child(value).observe(0.5)
  const { values } = (await histogram.get()) as { values: Array<{ labels: Record<string, string>; value: number; metricName?: string }> }
  const counts = values.filter((sample) => sample.metricName === 'h_count').map((sample) => [sample.labels.a, sample.value])
  t.same(counts, [['x', 1], ['y', 1], ['other', 2]])
})
