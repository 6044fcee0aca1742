import t from 'tap'
import { buildTestApp, expectProblem } from '../helper.js'

const preflight = (url: string, origin: string, method: string, headers: string) => ({
  method: 'OPTIONS' as const,
  url,
  headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers }
})

t.test('preflight: the methods and headers a browser client needs are allowed', async (t) => {
  const { app } = await buildTestApp(t, { env: { CORS_ORIGINS: '*' } })
  const response = await app.inject(preflight('/todos/1', 'https://www.todobackend.com', 'PATCH', 'content-type,if-match'))
  t.equal(response.statusCode, 204)
  t.equal(response.headers['access-control-allow-origin'], '*')
  t.match(response.headers['access-control-allow-methods'], /PATCH/)
  t.match(response.headers['access-control-allow-methods'], /DELETE/)
  for (const header of ['Content-Type', 'If-Match', 'If-None-Match']) t.match(response.headers['access-control-allow-headers'], header)
  t.equal(response.headers['access-control-max-age'], '600')
})

t.test('responses expose ETag, Location, Link and X-Total-Count to scripts', async (t) => {
  const { app } = await buildTestApp(t, { env: { CORS_ORIGINS: '*' } })
  const response = await app.inject({
    method: 'POST',
    url: '/todos',
    headers: { origin: 'http://localhost:5173', 'content-type': 'application/json' },
    payload: '{"title":"from a browser"}'
  })
  t.equal(response.statusCode, 201)
  t.equal(response.headers['access-control-allow-origin'], '*')
  for (const header of ['ETag', 'Location', 'Link', 'X-Total-Count']) t.match(response.headers['access-control-expose-headers'], header)
  const problem = await app.inject({ url: '/todos/nope', headers: { origin: 'http://localhost:5173' } })
  t.equal(problem.headers['access-control-allow-origin'], '*', 'errors carry CORS headers too, so scripts can read them')
})

t.test('Chrome private-network preflights are answered', async (t) => {
  const { app } = await buildTestApp(t, { env: { CORS_ORIGINS: '*' } })
  const response = await app.inject({
    ...preflight('/todos', 'https://www.todobackend.com', 'POST', 'content-type'),
    headers: { ...preflight('/todos', 'https://www.todobackend.com', 'POST', 'content-type').headers, 'access-control-request-private-network': 'true' }
  })
  t.equal(response.headers['access-control-allow-private-network'], 'true')
})

t.test('CORS_ORIGINS limits which origins are allowed', async (t) => {
  const { app } = await buildTestApp(t, { env: { CORS_ORIGINS: 'https://app.example.com,https://admin.example.com' } })
  const allowed = await app.inject(preflight('/todos', 'https://admin.example.com', 'POST', 'content-type'))
  t.equal(allowed.headers['access-control-allow-origin'], 'https://admin.example.com')
  t.match(allowed.headers.vary, /Origin/)
  const denied = await app.inject(preflight('/todos', 'https://evil.example.com', 'POST', 'content-type'))
  t.equal(denied.headers['access-control-allow-origin'], undefined)
})

t.test('no CORS at all when disabled (the production default)', async (t) => {
  const { app } = await buildTestApp(t, { env: { CORS_ORIGINS: 'none' } })
  const response = await app.inject({ url: '/todos', headers: { origin: 'https://www.todobackend.com' } })
  t.equal(response.statusCode, 200)
  t.equal(response.headers['access-control-allow-origin'], undefined)
  const options = await app.inject(preflight('/todos', 'https://www.todobackend.com', 'POST', 'content-type'))
  expectProblem(t, options, 405, { code: 'METHOD_NOT_ALLOWED' })
})
