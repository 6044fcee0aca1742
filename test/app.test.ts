import t from 'tap'
import { buildTestApp } from './helper.js'

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
  t.equal(response.statusCode, 404)
  t.equal(response.headers['content-type'], 'application/problem+json')
  t.same(response.json(), {
    type: 'about:blank',
    title: 'Not Found',
    status: 404,
    detail: 'no route for GET /nothing/here',
    code: 'ROUTE_NOT_FOUND',
    instance: '/nothing/here'
  })
})

t.test('malformed JSON is a 400 problem', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject({ method: 'POST', url: '/todos', headers: { 'content-type': 'application/json' }, payload: '{"title": ' })
  t.equal(response.statusCode, 400)
  t.equal(response.headers['content-type'], 'application/problem+json')
  t.match(response.json(), { type: 'about:blank', title: 'Bad Request', status: 400, detail: /JSON/ })
})

t.test('a body with an unsupported media type is a 415 problem', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject({ method: 'POST', url: '/todos', headers: { 'content-type': 'text/plain' }, payload: 'title=x' })
  t.equal(response.statusCode, 415)
  t.equal(response.headers['content-type'], 'application/problem+json')
  t.match(response.json(), { status: 415, title: 'Unsupported Media Type' })
})

t.test('a body over the size limit is a 413 problem', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject({
    method: 'POST',
    url: '/todos',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ title: 'x', description: 'y'.repeat(2 * 1024 * 1024) })
  })
  t.equal(response.statusCode, 413)
  t.equal(response.headers['content-type'], 'application/problem+json')
})

t.test('security headers are set on every response', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject('/health/live')
  t.equal(response.headers['x-content-type-options'], 'nosniff')
  t.match(response.headers['content-security-policy'], /default-src 'self'/)
})
