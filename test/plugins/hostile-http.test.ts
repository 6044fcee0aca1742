/**
 * What a hostile client sends over the wire, each over real HTTP: a Host that is not a
 * host, bodies too large or that cannot be framed, requests pipelined behind an answer
 * that closes the connection, CONNECT. Each gets one clear answer, and nothing runs that
 * should not.
 */
import http from 'node:http'
import t from 'tap'
import { newToken } from '../../src/accounts/tokens.js'
import { sql } from '../helper.js'
import { rawRequest } from '../support/http.js'
import { jsonPost as json, serve } from '../support/served.js'

const REQUIRED = { AUTH_MODE: 'required' }

t.test('Host must be host[:port]: a path or query in it is a 400 before anything is written', async (t) => {
  const { port, db } = await serve(t)
  const send = (host: string) => rawRequest(port, [`POST /todos HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{"title":"x"}`])
  for (const host of ['evil.example/phish?', 'evil.example?x', 'evil.example#x', 'a@evil.example', 'x:99999', 'x:1:2', '[::1']) {
    const answer = await send(host)
    t.equal(answer.status, 400, `Host: ${host}`)
    t.match(JSON.parse(answer.body), { code: 'INVALID_HOST' })
  }
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM todos'), [{ n: 0 }], 'nothing written')
  for (const host of ['localhost:3000', '127.0.0.1', '[::1]:8080', 'api']) t.equal((await send(host)).status, 201, `Host: ${host} is fine`)
})

t.test('a body too large gets its 413, not a reset, even while the client is still sending', async (t) => {
  const { port } = await serve(t)
  const body = Buffer.alloc(3 * 1024 * 1024, 'a')
  const post = (agent: http.Agent | false) =>
    new Promise<number | string>((resolve) => {
      let answered = false
      const client = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/todos', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (response) => {
        answered = true
        response.resume()
        response.on('end', () => resolve(response.statusCode ?? 0))
      })
      client.on('error', (error: NodeJS.ErrnoException) => answered || resolve(error.code ?? 'error'))
      // Sent in pieces, as a client on a real network does: still sending when the answer comes.
      let i = 0
      const next = () => {
        if (i === 48) return client.end()
        client.write(body.subarray(i * 65536, ++i * 65536))
        setTimeout(next, 2)
      }
      next()
    })
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 })
  t.teardown(() => keepAlive.destroy())
  const outcomes = await Promise.all([...Array.from({ length: 6 }, () => post(false)), ...Array.from({ length: 6 }, () => post(keepAlive))])
  t.same(outcomes, new Array(12).fill(413), 'every client read its 413 (EPIPE before)')
  const fetched = await Promise.all(Array.from({ length: 6 }, () => fetch(`http://127.0.0.1:${port}/todos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then((r) => r.status, (e: Error) => String((e.cause as Error | undefined)?.message ?? e))))
  t.same(fetched, new Array(6).fill(413), 'fetch clients too')
})

t.test('a request whose body cannot be framed gets exactly one 400, and the connection closes', async (t) => {
  const { port } = await serve(t, REQUIRED)
  const token = newToken().secret
  const answer = await rawRequest(port, [`DELETE /todos/999999 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n`], { timeoutMs: 5000 })
  const raw = `${Object.keys(answer.headers).length} ${answer.body}`
  t.equal(answer.status, 400)
  t.match(JSON.parse(answer.body), { code: 'INVALID_FRAMING' })
  t.notMatch(raw, /HTTP\/1\.1 \d{3}/, 'one answer only (a 415 and a 400 before)')
  t.ok(answer.ms < 4000, 'and the server closed the connection')
  for (const framing of ['Transfer-Encoding: chunked, gzip', 'Transfer-Encoding: gzip, chunked\r\nContent-Length: 5']) {
    const other = await rawRequest(port, [`POST /todos HTTP/1.1\r\nHost: x\r\n${framing}\r\nContent-Type: application/json\r\n\r\n0\r\n\r\n`], { timeoutMs: 5000 })
    t.equal(other.status, 400, framing)
    t.notMatch(other.body, /HTTP\/1\.1 \d{3}/, `${framing}: one answer`)
  }
})

t.test('CONNECT is answered like any unsupported method', async (t) => {
  const { port } = await serve(t)
  const answer = await rawRequest(port, ['CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'], { timeoutMs: 10_000 })
  t.ok(answer.ms < 5000, `and the server closes the connection (${answer.ms} ms; it stayed open for good)`)
  t.equal(answer.status, 405)
  t.equal(answer.headers['content-type'], 'application/problem+json')
  t.match(JSON.parse(answer.body), { status: 405, code: 'METHOD_NOT_ALLOWED' })
})

t.test('a request pipelined behind one whose answer closes the connection never runs', async (t) => {
  const { port, db } = await serve(t)
  const big = 'x'.repeat(1024 * 1024 + 10)
  const small = '{"title":"after"}'
  const answer = await rawRequest(
    port,
    [
      `POST /todos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n${big}` +
        `POST /todos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${small.length}\r\n\r\n${small}`
    ],
    { timeoutMs: 10_000 }
  )
  t.equal(answer.status, 413)
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM todos'), [{ n: 0 }], 'the second was not written behind a closed connection')
})

t.test('a malformed request behind one still being answered is not taken for its answer', async (t) => {
  const { port } = await serve(t, REQUIRED)
  // The sign-in takes a password hash (tens of milliseconds): the parser meets the bad
  // request behind it while it runs.
  const answer = await rawRequest(
    port,
    [
      'POST /tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 45\r\n\r\n{"email":"a@example.com","password":"guess!!"}'.replace('45', String('{"email":"a@example.com","password":"guess!!"}'.length)) +
        'GET /todos HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'
    ],
    { timeoutMs: 10_000 }
  )
  t.not(answer.status, 400, `the first answer read is not the parser's 400 (${answer.status || 'connection closed'})`)
})

t.test('no route takes a large body from anyone: unknown paths, other methods, preflights', async (t) => {
  const { request } = await serve(t)
  const big = JSON.stringify(Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [i.toString(36).padStart(4, '0'), 1])))
  for (const [method, path] of [['POST', '/anything'], ['PUT', '/todos/1'], ['POST', '/'], ['DELETE', '/todos/1']]) {
    const answer = await request(path as string, { ...json(big), method })
    t.equal(answer.status, 413, `${method} ${path}: 413 before it is read`)
  }
  const preflight = await request('/todos', { ...json(big), method: 'OPTIONS', headers: { 'content-type': 'application/json', origin: 'http://localhost:5173', 'access-control-request-method': 'POST' } })
  t.equal(preflight.status, 204, 'a preflight never reads its body')
})

t.test('local mode reads the Host the client sent, not a forwarded one it chose', async (t) => {
  const { port } = await serve(t, { TRUST_PROXY: '1' })
  const answer = await rawRequest(port, ['GET /todos HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: localhost\r\nConnection: close\r\n\r\n'])
  t.equal(answer.status, 403)
})
