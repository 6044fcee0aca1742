import t from 'tap'
import { buildTestApp, expectProblem, sql } from './helper.js'

t.test('GET / describes the service and links to its endpoints', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject({ url: '/', headers: { host: 'api.test:8080' } })
  t.equal(response.statusCode, 200)
  t.match(response.json(), {
    name: 'todos-api',
    version: /^\d+\.\d+\.\d+/,
    links: {
      todos: { href: 'http://api.test:8080/todos' },
      docs: { href: 'http://api.test:8080/docs' },
      ready: { href: 'http://api.test:8080/health/ready' }
    }
  })
})

t.test('PUBLIC_BASE_URL replaces the request host in links', async (t) => {
  const { app } = await buildTestApp(t, { env: { PUBLIC_BASE_URL: 'https://todos.example.com/api' } })
  const response = await app.inject('/')
  t.match(response.json(), { links: { todos: { href: 'https://todos.example.com/api/todos' } } })
})

t.test('an unknown route is a 404 problem', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject('/nothing/here?x=1')
  expectProblem(t, response, 404)
  t.same(response.json(), {
    type: 'about:blank',
    title: 'Not Found',
    status: 404,
    detail: 'no route for GET /nothing/here',
    code: 'ROUTE_NOT_FOUND',
    instance: '/nothing/here',
    request_id: response.headers['x-request-id']
  })
})

t.test('malformed JSON is a 400 problem', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject({ method: 'POST', url: '/todos', headers: { 'content-type': 'application/json' }, payload: '{"title": ' })
  expectProblem(t, response, 400, { type: 'about:blank', title: 'Bad Request', status: 400, detail: /JSON/ })
})

t.test('a body with an unsupported media type is a 415 problem', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject({ method: 'POST', url: '/todos', headers: { 'content-type': 'text/plain' }, payload: 'title=x' })
  expectProblem(t, response, 415, { status: 415, title: 'Unsupported Media Type' })
})

t.test('a body over the size limit is a 413 problem', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject({
    method: 'POST',
    url: '/todos',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ title: 'x', description: 'y'.repeat(2 * 1024 * 1024) })
  })
  expectProblem(t, response, 413)
})

t.test('security headers are set on every response: the API set on JSON, the page set on HTML', async (t) => {
  const { app } = await buildTestApp(t)
  for (const url of ['/health/live', '/todos', '/todos/1', '/nothing']) {
    const response = await app.inject(url)
    t.equal(response.headers['x-content-type-options'], 'nosniff', url)
    t.equal(response.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'", `${url}: a CSP that allows nothing`)
    t.equal(response.headers['x-frame-options'], 'DENY', url)
    const pageOnly = ['cross-origin-opener-policy', 'origin-agent-cluster', 'x-dns-prefetch-control', 'x-download-options', 'x-permitted-cross-domain-policies', 'x-xss-protection', 'referrer-policy']
    for (const header of [...pageOnly, 'cross-origin-resource-policy']) {
      t.notOk(response.headers[header], `${url}: no ${header}`)
    }
  }
  const page = await app.inject('/docs')
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.headers['content-security-policy'], /default-src 'self'.*script-src 'self'/)
  t.equal(page.headers['cross-origin-opener-policy'], 'same-origin', 'the page gets the full set')
  t.equal(page.headers['referrer-policy'], 'no-referrer', 'the page gets the full set')
})

t.test('Strict-Transport-Security only over HTTPS (RFC 6797: never on plain HTTP)', async (t) => {
  const { app } = await buildTestApp(t, { env: { TRUST_PROXY: 'true' } })
  t.notOk((await app.inject('/health/live')).headers['strict-transport-security'], 'plain HTTP: none')
  const https = await app.inject({ url: '/health/live', headers: { 'x-forwarded-proto': 'https' } })
  t.equal(https.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains', 'HTTPS at the proxy: sent')
  const { app: direct } = await buildTestApp(t)
  t.notOk((await direct.inject({ url: '/health/live', headers: { 'x-forwarded-proto': 'https' } })).headers['strict-transport-security'], 'an untrusted X-Forwarded-Proto does not count')
})

t.test('a Host that is not a host name is a 400 problem, before anything is written', async (t) => {
  const { app, db } = await buildTestApp(t)
  for (const host of ['a b', 'x:99999', 'exa[mple']) {
    for (const request of [
      { method: 'GET' as const, url: '/todos?limit=1' },
      { method: 'POST' as const, url: '/todos', payload: { title: 'x' } },
      { method: 'GET' as const, url: '/' }
    ]) {
      const response = await app.inject({ ...request, headers: { host } })
      t.equal(response.statusCode, 400, `${request.method} ${request.url} Host: ${host}`)
      t.match(response.json(), { code: 'INVALID_HOST' })
    }
  }
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM todos'), [{ n: 0 }])
  t.equal((await app.inject({ url: '/health/live', headers: { host: '10.0.0.7:3000' } })).statusCode, 200, 'an address and port is fine')
  const { app: fixed } = await buildTestApp(t, { env: { PUBLIC_BASE_URL: 'https://api.example.com' } })
  t.equal((await fixed.inject({ url: '/todos', headers: { host: 'a b' } })).statusCode, 200, 'irrelevant when PUBLIC_BASE_URL is set')
})
