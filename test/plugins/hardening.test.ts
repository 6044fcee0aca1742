/**
 * What a hostile client tried (issue 22), each over real HTTP against a real PostgreSQL:
 * one request must never freeze the service, and every promise about credentials holds.
 */
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import t from 'tap'
import { newToken } from '../../src/accounts/tokens.js'
import { buildTestApp, freePort, freshDatabase, sql, startServer } from '../helper.js'
import { waitForLockWaiters } from '../support/database.js'
import { rawRequest } from '../support/http.js'
import { clientOf, jsonPost as json, serve } from '../support/served.js'

const REQUIRED = { AUTH_MODE: 'required' }

const UNKNOWN_TOKEN = { authorization: `Bearer ${newToken().secret}` }

async function signUp(app: FastifyInstance, email: string, password = 'correct horse battery') {
  await app.inject({ method: 'POST', url: '/users', remoteAddress: '192.0.2.200', payload: { email, name: 'Someone', password } })
  const token = (await app.inject({ method: 'POST', url: '/tokens', remoteAddress: '192.0.2.201', payload: { email, password } })).json() as { token: string }
  return { authorization: `Bearer ${token.token}` }
}

t.test('a 1 MiB body of whitespace in any text field is answered at once, and the service stays responsive meanwhile', async (t) => {
  // A server of its own, so that a frozen event loop fails this test within seconds instead of stalling the file.
  const db = await freshDatabase(t)
  const server = await startServer(t, { ...REQUIRED, DATABASE_URL: db, AUTH_RATE_LIMIT: '100' })
  await server.waitFor(/Server listening/)
  const request = clientOf(server.port)
  await request('/users', json({ email: 'ada@example.com', name: 'Ada', password: 'correct horse battery' }))
  const valid = { authorization: `Bearer ${(await request('/tokens', json({ email: 'ada@example.com', password: 'correct horse battery' }))).json().token as string}` }
  const spaces = ' '.repeat(1024 * 1024 - 200)
  const text = `é${spaces}é`
  const cases: Array<[string, string, string, string, Record<string, string>, number]> = [
    ['POST', '/todos', 'title', JSON.stringify({ title: text }), valid, 400],
    ['POST', '/todos', 'description', JSON.stringify({ title: 'x', description: text }), valid, 400],
    ['PATCH', '/todos/1', 'title', JSON.stringify({ title: text }), valid, 400],
    ['POST', '/cats', 'name', JSON.stringify({ name: text, price: 1 }), valid, 400],
    ['POST', '/cats', 'breed', JSON.stringify({ name: 'x', breed: text, price: 1 }), valid, 400],
    // Before the client proved anything: a made-up token is refused before a large body is read ...
    ['POST', '/todos', 'title, with a made-up token', JSON.stringify({ title: text }), UNKNOWN_TOKEN, 401],
    ['PATCH', '/todos/1', 'title, with a made-up token', JSON.stringify({ title: text }), UNKNOWN_TOKEN, 401],
    // ... and the account routes, which take no token, take small bodies only.
    ['POST', '/users', 'name', JSON.stringify({ email: 'a@example.com', name: text, password: 'long enough' }), {}, 413],
    ['POST', '/tokens', 'name', JSON.stringify({ email: 'a@example.com', password: 'x', name: text }), {}, 413]
  ]
  for (const [method, path, field, body, headers, status] of cases) {
    const label = `${method} ${path} ${field}`
    const [answer, live] = await Promise.all([
      request(path, { ...json(body, headers), method, timeoutMs: 20_000 }),
      (async () => {
        await new Promise((resolve) => setTimeout(resolve, 5))
        return request('/health/live')
      })()
    ])
    t.equal(answer.status, status, `${label}: ${status}`)
    t.ok(answer.ms < 1000, `${label}: answered in ${answer.ms.toFixed(0)} ms (the regular expression took minutes)`)
    t.ok(live.ms < 1000, `${label}: /health/live answered meanwhile in ${live.ms.toFixed(0)} ms`)
  }
  // Trimmed as before, only linearly: every Unicode space at either end.
  const padded = await request('/todos', json({ title: `\u0085\u3000 ${'x'.repeat(10)} \u2028` }, valid))
  t.equal((padded.json() as { title: string }).title, 'x'.repeat(10))
})

t.test('a body with a hundred thousand bad fields costs one small answer that says more were cut', async (t) => {
  const { request } = await serve(t)
  const fields = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [i.toString(36).padStart(4, '0'), 1]))
  const body = JSON.stringify({ title: 'x', ...fields })
  const answer = await request('/todos', json(body))
  t.equal(answer.status, 400, `400 (${body.length} bytes sent)`)
  t.ok(answer.body.length < 4096, `the answer is ${answer.body.length} bytes for a ${body.length}-byte request (it was 11 MB)`)
  const problem = answer.json() as { errors: unknown[]; more_errors?: boolean; detail: string }
  t.ok(problem.errors.length >= 1 && problem.errors.length <= 10, `${problem.errors.length} errors listed`)
  t.equal(problem.more_errors, true, 'and it says more were not listed')
  t.ok(answer.ms < 5000, `in ${answer.ms.toFixed(0)} ms (for a client that proved who it is: JSON.parse alone takes 0.1 s on 100 000 keys)`)

  // A small request still gets every problem at once.
  const few = await request('/todos', json({ title: '', completed: 'yes', order: 1.5, unknown: 1 }))
  const listed = few.json() as { errors: Array<{ field: string }>; more_errors?: boolean }
  t.same(listed.errors.map((error) => error.field).sort(), ['completed', 'order', 'title', 'unknown'])
  t.notOk(listed.more_errors)
  // And a field name a client made huge comes back cut short.
  const huge = await request('/todos', json(`{"title":"x","${'k'.repeat(500_000)}":1}`))
  t.ok(huge.body.length < 2048, `a 500 kB field name is not echoed back (${huge.body.length} bytes)`)
})

t.test('a password change applies only if the password it checked is still the one stored, and the calling token still valid', async (t) => {
  const { app, db, request } = await serve(t, { ...REQUIRED, AUTH_RATE_LIMIT: '100' })
  const owner = await signUp(app, 'ada@example.com')
  const thief = await signUp(app, 'ada@example.com')
  // Both changes are checked against the same password before either writes: the row is
  // held by another transaction until both are waiting for it.
  const holder = new pg.Client({ connectionString: db })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('BEGIN')
  await holder.query("SELECT 1 FROM users WHERE email = 'ada@example.com' FOR UPDATE")
  const change = (headers: Record<string, string>, body: object) => request('/users/me', { ...json(body, headers), method: 'PATCH', timeoutMs: 20_000 })
  const ownerChange = change(owner, { password: 'the owners new one', current_password: 'correct horse battery' })
  const thiefChange = change(thief, { password: 'the thiefs new one', current_password: 'correct horse battery' })
  await waitForLockWaiters(db, 2)
  await holder.query('COMMIT')
  const answers = await Promise.all([ownerChange, thiefChange])
  const statuses = answers.map((answer) => answer.status).sort()
  t.equal(statuses.filter((status) => status === 200).length, 1, `exactly one change applied (${statuses.join(', ')}); both did before`)
  const winner = answers[0]?.status === 200 ? 'the owners new one' : 'the thiefs new one'
  const loser = answers.find((answer) => answer.status !== 200)
  t.ok(loser && [401, 409].includes(loser.status), `the other is told it did not apply (${loser?.status})`)
  const signIn = await app.inject({ method: 'POST', url: '/tokens', remoteAddress: '192.0.2.9', payload: { email: 'ada@example.com', password: winner } })
  t.equal(signIn.statusCode, 201, 'the password that stayed is the one answered 200')

  // An email change meeting a password change: the same rule.
  const fresh = await signUp(app, 'grace@example.com')
  const other = await signUp(app, 'grace@example.com')
  await holder.query('BEGIN')
  await holder.query("SELECT 1 FROM users WHERE email = 'grace@example.com' FOR UPDATE")
  const passwordChange = change(fresh, { password: 'graces new password', current_password: 'correct horse battery' })
  const emailChange = change(other, { email: 'mallory@example.com', current_password: 'correct horse battery' })
  await waitForLockWaiters(db, 2)
  await holder.query('COMMIT')
  const both = await Promise.all([passwordChange, emailChange])
  t.equal(both.filter((answer) => answer.status === 200).length, 1, `one of the password and the email change applied (${both.map((a) => a.status).join(', ')})`)
})

t.test('TRUST_PROXY takes a number of proxies, and IPv6 clients are counted by their /64', async (t) => {
  const { request } = await serve(t, { ...REQUIRED, AUTH_RATE_LIMIT: '3', TRUST_PROXY: '1' })
  const attempt = (forwardedFor: string, i: number) => request('/tokens', json({ email: `user${i}@example.com`, password: 'guess guess' }, { 'x-forwarded-for': forwardedFor }))
  // A proxy that appends: the client writes what it likes first, the proxy adds the address it saw.
  const chosen = []
  for (let i = 0; i < 4; i++) chosen.push((await attempt(`10.9.9.${i}, 127.0.0.1`, i)).status)
  t.same(chosen, [401, 401, 401, 429], 'an address a client chose itself does not count: the one the proxy saw does')
  const v6 = []
  for (let i = 0; i < 4; i++) v6.push((await attempt(`2001:db8:1:2::${i + 1}`, 10 + i)).status)
  t.same(v6, [401, 401, 401, 429], 'four addresses of one /64 are one client')
  t.equal((await attempt('2001:db8:1:3::1', 20)).status, 401, 'another /64 is another client')
})

t.test('nobody can lock an account owner out of signing in', async (t) => {
  const { app, request } = await serve(t, { ...REQUIRED, AUTH_RATE_LIMIT: '2', TRUST_PROXY: '1' })
  await signUp(app, 'victim@example.com')
  const from = (address: string) => ({ 'x-forwarded-for': address })
  // Cheap requests that check no password count for nothing.
  for (let i = 0; i < 10; i++) {
    const bad = await request('/tokens', json({ email: 'victim@example.com', password: 'x', expires_at: '2000-01-01T00:00:00Z' }, from('203.0.113.66')))
    t.equal(bad.status, 400)
  }
  t.equal((await request('/tokens', json({ email: 'victim@example.com', password: 'correct horse battery' }, from('198.51.100.7')))).status, 201, 'ten malformed attempts did not lock the owner out')
  // An attacker at one address guessing: limited there, not where the owner is.
  const guesses = []
  for (let i = 0; i < 6; i++) guesses.push((await request('/tokens', json({ email: 'victim@example.com', password: `guess ${i}` }, from('203.0.113.66')))).status)
  t.same(guesses, [401, 401, 429, 429, 429, 429], 'the guesser is limited at its address')
  t.equal((await request('/tokens', json({ email: 'victim@example.com', password: 'correct horse battery' }, from('198.51.100.7')))).status, 201, 'and the owner still signs in from theirs')
  // Eleven /64s of one /56 (a home connection's share) are more than one client, not eleven.
  for (let net = 0; net < 11; net++) for (let i = 0; i < 3; i++) await request('/tokens', json({ email: 'victim@example.com', password: `guess ${net}.${i}` }, from(`2001:db8:77:${net.toString(16)}::${i + 1}`)))
  t.equal((await request('/tokens', json({ email: 'victim@example.com', password: 'correct horse battery' }, from('198.51.100.8')))).status, 201, 'nor from many addresses of one network')
})

t.test('readiness tells strangers a stable code per failing check, and nothing about the database', async (t) => {
  const unreachable = `postgres://todos:s3cret@127.0.0.1:${await freePort()}/nowhere`
  const { app } = await buildTestApp(t, { connectionString: unreachable })
  const answer = await app.inject('/health/ready')
  t.equal(answer.statusCode, 503)
  t.match(answer.json(), { code: 'NOT_READY', checks: { database: { status: 'failing', code: 'DATABASE_UNAVAILABLE' }, migrations: { status: 'failing', code: 'NOT_CHECKED' } } })
  t.notMatch(answer.body, /127\.0\.0\.1|ECONNREFUSED|nowhere|s3cret|todos@|connect/i, `no address, driver text or secret: ${answer.body}`)
})

t.test('AUTH_MODE=local answers browsers only from pages on this machine, unless CORS_ORIGINS says otherwise', async (t) => {
  const { request, port } = await serve(t)
  const evil = await request('/todos', { headers: { origin: 'https://evil.example' } })
  t.equal(evil.headers.get('access-control-allow-origin'), null, 'a page of another site cannot read the local user')
  const preflight = await request('/todos', { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'DELETE' } })
  t.equal(preflight.headers.get('access-control-allow-origin'), null, 'nor delete their todos')
  for (const origin of ['http://localhost:5173', 'http://127.0.0.1:8080', 'http://[::1]:3000']) {
    t.equal((await request('/todos', { headers: { origin } })).headers.get('access-control-allow-origin'), origin, `${origin} may`)
  }
  const rebound = await rawRequest(port, ['GET /todos HTTP/1.1\r\nHost: evil.example:3000\r\nConnection: close\r\n\r\n'])
  t.equal(rebound.status, 403, 'a DNS name pointed at this machine does not act as the local user')
  t.match(JSON.parse(rebound.body), { code: 'LOCAL_HOST_ONLY' })
  const { request: open } = await serve(t, { CORS_ORIGINS: '*' })
  t.equal((await open('/todos', { headers: { origin: 'https://www.todobackend.com' } })).headers.get('access-control-allow-origin'), '*', 'CORS_ORIGINS=* is heard')
})

t.test('password hashes are rationed: a flood of sign-ins is told to come back, and the service answers meanwhile', async (t) => {
  // The flood's own answers may take long on a busy machine (each hash is half a second of
  // CPU); what is measured is that the probe is answered meanwhile.
  const { request } = await serve(t, { ...REQUIRED, AUTH_RATE_LIMIT: '1000', TRUST_PROXY: '1', PASSWORD_HASH_COST: '14' })
  const flood = Array.from({ length: 40 }, (_, i) => request('/tokens', { ...json({ email: `u${i}@example.com`, password: 'guess guess' }, { 'x-forwarded-for': `198.51.${i}.1` }), timeoutMs: 120_000 }))
  const live = await request('/health/live')
  const answers = await Promise.all(flood)
  const busy = answers.filter((answer) => answer.status === 503)
  t.ok(busy.length > 0, `${busy.length} of 40 told to come back`)
  t.ok(busy.every((answer) => answer.headers.get('retry-after') === '1'), 'with Retry-After')
  t.ok(answers.every((answer) => answer.status === 401 || answer.status === 503), 'the others were checked (401)')
  t.ok(live.ms < 1000, `the service answered meanwhile (${live.ms.toFixed(0)} ms)`)
})

t.test('expired rate-limit counters are deleted, in batches', async (t) => {
  const { app, db } = await buildTestApp(t)
  await sql(db, "INSERT INTO rate_limits (bucket, hits, resets_at) SELECT sha256(i::text::bytea), 1, now() - interval '1 minute' FROM generate_series(1, 2500) i")
  await sql(db, "INSERT INTO rate_limits (bucket, hits, resets_at) VALUES (sha256('live'), 1, now() + interval '1 minute')")
  t.equal(await app.auth.limiter.reap(), 2500)
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM rate_limits'), [{ n: 1 }], 'the live one stays')
})
