/**
 * X-Request-Id and traceparent: one id per request in its answer, its problem body and
 * its log lines; a well-formed incoming one kept, anything else replaced and never echoed.
 */
import { connect } from 'node:net'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { buildTestApp, freshDatabase, testConfig } from '../helper.js'
import { collectingLogger } from '../support/logs.js'
import { startNginx } from '../support/nginx.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'

/** The app with its log lines collected, as JSON objects. */
async function loggedApp(t: Test) {
  const { logger, lines } = collectingLogger()
  const db = await freshDatabase(t)
  const app = await buildApp({ config: testConfig({ DATABASE_URL: db, LOG_LEVEL: 'info' }), connectionString: db, loggerInstance: logger })
  t.teardown(() => app.close())
  return { app, lines }
}

t.test('every answer carries an id: a new one, or the incoming one when it is well-formed', async (t) => {
  const { api } = await buildTestApp(t)
  const created = await api.post('/todos', { title: 'with an id' })
  t.match(created.headers['x-request-id'], UUID, 'a success, with no id sent: a new UUID')
  const other = await api.get('/todos')
  t.not(other.headers['x-request-id'], created.headers['x-request-id'], 'one per request')

  for (const id of ['abc-123', 'f1d2d2f924e986ac86fdf7b36c94bcdf', '01J9Z3K6Q8X4Y2W7V5T3R1P0NM', 'a.b:c@d/e+f=g_h', 'x'.repeat(128)]) {
    const answer = await api.get('/todos', { 'x-request-id': id })
    t.equal(answer.headers['x-request-id'], id, `kept: ${id.slice(0, 40)}`)
  }
  for (const id of ['x'.repeat(129), '<script>alert(1)</script>', 'a b', 'id;rm -rf', '"quoted"', 'é', '']) {
    const answer = await api.get('/todos', { 'x-request-id': id })
    t.match(answer.headers['x-request-id'], UUID, `replaced: ${JSON.stringify(id.slice(0, 40))}`)
    t.notOk(answer.body.includes(id) && id !== '', 'and never echoed in the body')
  }
})

t.test("a problem's body names its request: request_id, the same as the header", async (t) => {
  const { api } = await buildTestApp(t)
  for (const answer of [
    await api.get('/todos/999999'),
    await api.get('/no/such/route'),
    await api.post('/todos', { title: '' }),
    await api.get('/todos', { authorization: 'Bearer nope', 'x-request-id': 'client-chosen-1' }),
    await api.get('/todos/%E0%A4%A')
  ]) {
    t.equal(answer.headers['content-type'], 'application/problem+json', `${answer.statusCode}`)
    t.equal(answer.json().request_id, answer.headers['x-request-id'], `${answer.statusCode} ${answer.json().code}: request_id is the header's`)
  }
})

t.test("the id and a valid traceparent's trace id are in every log line of the request", async (t) => {
  const { app, lines } = await loggedApp(t)
  await app.inject({ url: '/todos', headers: { 'x-request-id': 'find-me-42', traceparent: `00-${TRACE}-00f067aa0ba902b7-01` } })
  const access = lines.filter((line) => line.msg === 'request')
  t.match(access[0], { request_id: 'find-me-42', trace_id: TRACE, route: '/todos' })

  for (const bad of [`00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, `00-${TRACE}-0000000000000000-01`, `ff-${TRACE}-00f067aa0ba902b7-01`, `00-${TRACE.toUpperCase()}-00f067aa0ba902b7-01`, `00-${TRACE}-00f067aa0ba902b7-01-extra`, 'garbage', '0'.repeat(100_000)]) {
    lines.length = 0
    const answer = await app.inject({ url: '/todos', headers: { traceparent: bad } })
    const [line] = lines.filter((entry) => entry.msg === 'request')
    t.notOk(line && 'trace_id' in line, `ignored: ${bad.slice(0, 60)}`)
    t.notOk(JSON.stringify(answer.headers).includes(bad.slice(0, 40)) || answer.body.includes(bad.slice(0, 40)), 'and never echoed')
  }
  lines.length = 0
  await app.inject({ url: '/todos', headers: { traceparent: `01-${TRACE}-00f067aa0ba902b7-01-future` } })
  t.match(lines.find((line) => line.msg === 'request'), { trace_id: TRACE }, 'a later version is read by its first four fields')
})

t.test('an answer the HTTP parser writes itself has an id too', async (t) => {
  const { app } = await buildTestApp(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const raw = await new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'))
    let data = ''
    socket.setEncoding('utf8').on('data', (chunk) => (data += chunk)).on('close', () => resolve(data))
  })
  const id = /\r\nX-Request-Id: ([0-9a-f-]{36})\r\n/.exec(raw)?.[1]
  t.match(id, UUID)
  t.match(raw, `"request_id":"${id}"`)
})

t.test("behind the bundled nginx: nginx's $request_id or the client's own reaches the logs and the answer; a client's traceparent stops at the edge", async (t) => {
  const { app, lines } = await loggedApp(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const nginx = await startNginx(t, [(app.server.address() as { port: number }).port])
  const answer = await fetch(`${nginx.url}/todos`, { headers: { traceparent: `00-${TRACE}-00f067aa0ba902b7-01` } })
  const id = answer.headers.get('x-request-id')
  t.match(id, /^[0-9a-f]{32}$/, "nginx's $request_id, passed on and kept")
  const line = lines.find((entry) => entry.msg === 'request' && entry.request_id === id)
  t.ok(line, 'the same id in the log line')
  t.notOk(line && 'trace_id' in line, "the public's traceparent did not pass nginx")
  const own = await fetch(`${nginx.url}/health/live`, { headers: { 'x-request-id': 'from-the-client-7' } })
  t.equal(own.headers.get('x-request-id'), 'from-the-client-7')
  const hostile = await fetch(`${nginx.url}/health/live`, { headers: { 'x-request-id': '<img src=x>' } })
  t.match(hostile.headers.get('x-request-id'), UUID, 'a hostile one is replaced by the API')
})
