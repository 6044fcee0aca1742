/**
 * Every answer the process writes on the wire, for requests that are wrong in every way
 * a client or the network can make them: problem+json with a 4xx, nothing stored, no
 * database message. Real HTTP (raw sockets) and a real PostgreSQL.
 */
import t from 'tap'
import { buildTestApp, sql } from '../helper.js'
import { rawRequest, type RawResponse } from '../support/http.js'

const listen = async (t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}) => {
  const { app, db } = await buildTestApp(t, { env })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  return { app, db, port: typeof address === 'object' && address ? address.port : 0 }
}

const isProblem = (t: Parameters<typeof buildTestApp>[0], response: RawResponse, status: number, code: string | RegExp, label: string) => {
  t.equal(response.status, status, `${label}: ${status}`)
  t.equal(response.headers['content-type'], 'application/problem+json', `${label}: problem+json`)
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(response.body) as Record<string, unknown>
  } catch {
    t.fail(`${label}: the body is JSON: ${JSON.stringify(response.body)}`)
  }
  t.match(body, { type: 'about:blank', status, code, detail: String }, `${label}: the problem's fields`)
  return body
}

t.test('requests the parser or the router refuse are problem+json too', async (t) => {
  const { port } = await listen(t)
  // Connection: close, so that an answer the server keeps the connection open after still ends the read.
  const request = (lines: string[]) => rawRequest(port, [`${[...lines, 'Connection: close'].join('\r\n')}\r\n\r\n`])
  isProblem(t, await request(['GET /todos/%c0 HTTP/1.1', 'Host: x']), 400, 'BAD_URL', 'a malformed percent-encoding')
  isProblem(t, await request([`GET /todos/${'1'.repeat(101)} HTTP/1.1`, 'Host: x']), 414, 'URI_TOO_LONG', 'a 101-digit id')
  isProblem(t, await request(['get /todos HTTP/1.1', 'Host: x']), 400, 'MALFORMED_REQUEST', 'a lower-case method')
  isProblem(t, await request(['POST /todos HTTP/1.1', 'Host: x', 'Content-Length: -1']), 400, 'MALFORMED_REQUEST', 'Content-Length: -1')
  isProblem(t, await request(['GET /todos HTTP/1.1', 'Host: x', 'X-Bad: a\u0000b']), 400, 'MALFORMED_REQUEST', 'a NUL in a header')
  isProblem(t, await request(['GET /todos HTTP/1.1', 'Host: x', `X-Big: ${'a'.repeat(20_000)}`]), 431, 'HEADERS_TOO_LARGE', 'huge headers')
  isProblem(t, await request(['GET /todos HTTP/1.1']), 400, 'MISSING_HOST', 'no Host')
  const trace = await request(['TRACE /todos/1 HTTP/1.1', 'Host: x'])
  isProblem(t, trace, 405, 'METHOD_NOT_ALLOWED', 'TRACE on an item')
  t.equal(trace.headers.allow, 'DELETE, GET, HEAD, PATCH')
  const put = await request(['PUT /todos HTTP/1.1', 'Host: x', 'Content-Length: 0'])
  isProblem(t, put, 405, 'METHOD_NOT_ALLOWED', 'PUT on the collection')
  t.equal(put.headers.allow, 'DELETE, GET, HEAD, POST')
  isProblem(t, await request(['GET /nothing/here HTTP/1.1', 'Host: x']), 404, 'ROUTE_NOT_FOUND', 'a path that names nothing')
})

t.test('a body trickled in is cut at REQUEST_TIMEOUT_MS with a 408 problem, not minutes later', async (t) => {
  const { port, db } = await listen(t, { REQUEST_TIMEOUT_MS: '2000' })
  const body = '{"title":"slow"}'
  const head = `POST /todos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`
  const response = await rawRequest(port, [head, ...body.split('')], { gapMs: 500, timeoutMs: 20_000 })
  isProblem(t, response, 408, 'REQUEST_TIMEOUT', 'trickled body')
  t.ok(response.ms >= 2000 && response.ms < 4500, `cut after ${response.ms} ms (limit 2000 ms, checked every second)`)
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM todos'), [{ n: 0 }], 'nothing stored')
})

/** fetch against a listening app, answering like inject (statusCode, headers, body, json()). */
const httpClient = (port: number) => async (method: string, path: string, payload?: string) => {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    ...(payload === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: payload })
  })
  const body = await response.text()
  return { statusCode: response.status, headers: Object.fromEntries(response.headers), body, json: () => JSON.parse(body) as unknown }
}

t.test('values the schema would pass but PostgreSQL would refuse or change are a 400 naming the field; no database text', async (t) => {
  const { port, db } = await listen(t)
  const request = httpClient(port)
  const post = (payload: string) => request('POST', '/todos', payload)
  const cases: Array<[string, string, string]> = [
    ['an offset PostgreSQL cannot hold', '{"title":"x","due_date":"2026-01-01T00:00:00-23:00"}', 'due_date'],
    ['a leap second (stored as the next year)', '{"title":"x","due_date":"9999-12-31T23:59:60Z"}', 'due_date'],
    ['a year-1000 date that is year 999 in UTC', '{"title":"x","due_date":"1000-01-01T00:00:00+14:00"}', 'due_date'],
    ['a fraction that rounds into year 10000', '{"title":"x","due_date":"9999-12-31T23:59:59.9999Z"}', 'due_date'],
    ['February 30th', '{"title":"x","due_date":"2026-02-30T00:00:00Z"}', 'due_date'],
    ['a NUL in a title', '{"title":"a\\u0000b"}', 'title'],
    ['a lone surrogate', '{"title":"a\\ud800"}', 'title'],
    ['a lone low surrogate in a description', '{"title":"ok","description":"\\udc00"}', 'description'],
    ['a title of only U+0085 NEXT LINE', '{"title":"\\u0085"}', 'title'],
    ['a title of only U+3000 and U+2028', '{"title":"\\u3000\\u2028"}', 'title'],
    ['a NUL deep in metadata', '{"title":"x","metadata":{"a":[{"b":["\\u0000"]}]}}', 'metadata.a.0.b.0'],
    // Nested deeper than the call stack goes, well under the 16 KiB taken before a token is proven.
    ['arrays nested 7000 deep', `{"title":"x","metadata":{"a":${'['.repeat(7000)}${']'.repeat(7000)}}}`, 'metadata'],
    ['objects nested 2000 deep', `{"title":"x","metadata":${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}}`, 'metadata']
  ]
  for (const [label, payload, field] of cases) {
    const response = await post(payload)
    t.equal(response.statusCode, 400, `${label}: 400`)
    t.equal(response.headers['content-type'], 'application/problem+json')
    t.match(response.json(), { errors: [{ in: 'body', field }] }, `${label}: names ${field}`)
    t.notMatch(response.body, /database|encoding|displacement|invalid byte/i, `${label}: no database text`)
  }
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM todos'), [{ n: 0 }], 'nothing stored')

  // The ends of the documented range are accepted, and come back as what was sent.
  for (const due of ['1000-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z', '1000-01-01T14:00:00+14:00']) {
    const created = await post(JSON.stringify({ title: 'edge', due_date: due }))
    t.equal(created.statusCode, 201, `${due} accepted`)
    const returned = (created.json() as { due_date: string }).due_date
    t.equal(Date.parse(returned), Date.parse(due), `${due} stored as the same instant`)
    t.match(returned, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, 'returned as RFC 3339')
    t.equal((await post(JSON.stringify({ title: 'again', due_date: returned }))).statusCode, 201, 'and what is returned is accepted back')
  }
  const [trimmed] = await sql<{ title: string }>(db, 'SELECT title FROM todos t WHERE id = (SELECT max(id) FROM todos)')
  t.ok(trimmed)
  const spaced = await post('{"title":"\\u0085 padded \\u3000"}')
  t.equal((spaced.json() as { title: string }).title, 'padded', 'every Unicode space is trimmed')
})

t.test('integers in paths and query strings are decimal digits', async (t) => {
  const { port } = await listen(t)
  const request = httpClient(port)
  for (const url of ['/todos/0x10', '/todos/1e3', '/todos/1.0', '/todos?limit=0x3e8', '/todos?limit=1e2', '/cats?min_price=1e3', '/todos?limit=%2010']) {
    const response = await request('GET', url)
    t.equal(response.statusCode, 400, url)
    t.equal(response.headers['content-type'], 'application/problem+json')
  }
  t.equal((await request('GET', '/todos?limit=010')).statusCode, 200, 'leading zeros are still decimal')
})
