/**
 * Users, tokens and ownership (AUTH_MODE=required unless a test says otherwise): every
 * request says who it is, and nobody sees or touches another user's rows.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import t, { type Test } from 'tap'
import { newToken } from '../../src/accounts/tokens.js'
import { buildTestApp, expectProblem, freshDatabase, sql } from '../helper.js'
import { nextLink } from '../support/http.js'

const REQUIRED = { AUTH_MODE: 'required' }

interface Account {
  id: number
  email: string
  token: string
  auth: { authorization: string }
}

async function signUp(t: Test, app: FastifyInstance, email: string, password = 'correct horse battery'): Promise<Account> {
  const user = await app.inject({ method: 'POST', url: '/users', payload: { email, name: email.split('@')[0], password } })
  t.equal(user.statusCode, 201, `${email} signed up`)
  const token = await app.inject({ method: 'POST', url: '/tokens', payload: { email, password } })
  t.equal(token.statusCode, 201, `${email} got a token`)
  const secret = (token.json() as { token: string }).token
  return { id: (user.json() as { id: number }).id, email, token: secret, auth: { authorization: `Bearer ${secret}` } }
}

t.test('sign up, get a token, use it, list it, revoke it', async (t) => {
  const { app, db } = await buildTestApp(t, { env: REQUIRED })
  const signup = await app.inject({ method: 'POST', url: '/users', payload: { email: 'Ada@Example.com', name: 'Ada', password: 'correct horse battery' } })
  t.equal(signup.statusCode, 201)
  t.match(signup.json(), { id: Number, email: 'Ada@Example.com', name: 'Ada', created_at: String })
  t.notOk('password' in signup.json() || 'password_hash' in signup.json(), 'no password in the answer')
  t.match(signup.headers.location, /\/users\/me$/)
  expectProblem(t, await app.inject({ method: 'POST', url: '/users', payload: { email: 'ada@example.COM', name: 'Ada 2', password: 'another password' } }), 409, { code: 'EMAIL_TAKEN' }, 'same email, other case')

  const created = await app.inject({ method: 'POST', url: '/tokens', payload: { email: 'ada@example.com', password: 'correct horse battery', name: 'laptop' } })
  t.equal(created.statusCode, 201)
  t.equal(created.headers['cache-control'], 'no-store')
  const token = created.json() as { id: number; token: string; prefix: string; name: string; expires_at: null }
  t.match(token, { id: Number, name: 'laptop', expires_at: null, last_used_at: null })
  t.match(token.token, /^tapi_[A-Za-z0-9_-]{43}$/, 'a recognisable prefix and 256 random bits')
  t.ok(token.token.startsWith(token.prefix), 'the display prefix is the start of the token')
  t.ok(token.prefix.length < 12, 'and only a few characters of it')

  const [stored] = await sql<{ token_hash: Buffer; password_hash: string }>(db, 'SELECT token_hash, (SELECT password_hash FROM users WHERE id = user_id) FROM api_tokens')
  t.equal(stored?.token_hash.length, 32, 'the token is stored as a SHA-256 hash')
  const everything = JSON.stringify(await sql(db, 'SELECT u.*, k.* FROM users u LEFT JOIN api_tokens k ON k.user_id = u.id'))
  t.notOk(everything.includes(token.token.slice(5)), 'the token itself is nowhere in the database')
  t.notOk(everything.includes('correct horse'), 'nor the password')
  t.match(stored?.password_hash, /^scrypt\$1024\$8\$5\$/, 'the password is an scrypt hash, N = 2^PASSWORD_HASH_COST (the tests\' 10; 14 by default)')

  const auth = { authorization: `Bearer ${token.token}` }
  const todo = await app.inject({ method: 'POST', url: '/todos', headers: auth, payload: { title: 'mine' } })
  t.equal(todo.statusCode, 201)
  t.equal((await app.inject({ url: '/todos', headers: auth })).json().length, 1)
  t.equal((await app.inject({ url: '/todos', headers: { authorization: `bearer  ${token.token}` } })).statusCode, 200, 'the scheme is case-insensitive')
  const me = await app.inject({ url: '/users/me', headers: auth })
  t.match(me.json(), { email: 'Ada@Example.com', name: 'Ada' })

  const listed = await app.inject({ url: '/tokens', headers: auth })
  t.equal(listed.statusCode, 200)
  t.match(listed.json(), [{ id: token.id, name: 'laptop', prefix: token.prefix }])
  t.notOk(listed.body.includes(token.token), 'the list never shows a token')
  const [used] = await sql<{ last_used_at: string | null }>(db, 'SELECT last_used_at FROM api_tokens WHERE id = $1', [token.id])
  t.ok(used?.last_used_at, 'its last use is recorded')

  t.equal((await app.inject({ method: 'DELETE', url: `/tokens/${token.id}`, headers: auth })).statusCode, 204)
  const refused = expectProblem(t, await app.inject({ url: '/todos', headers: auth }), 401, { code: 'UNAUTHENTICATED' }, 'revoked: refused on the very next request')
  t.ok(refused)
  expectProblem(t, await app.inject({ method: 'POST', url: '/todos', headers: auth, payload: { title: 'after revoke' } }), 401, {}, 'no write either')
  t.same(await sql(db, `SELECT title FROM todos`), [{ title: 'mine' }], 'nothing was written')
})

t.test('a revoked token is refused at once by every instance on the database', async (t) => {
  const db = await freshDatabase(t)
  const { app: one } = await buildTestApp(t, { connectionString: db, env: REQUIRED })
  const { app: two } = await buildTestApp(t, { connectionString: db, env: REQUIRED })
  const ada = await signUp(t, one, 'ada@example.com')
  const created = await two.inject({ method: 'POST', url: '/todos', headers: ada.auth, payload: { title: 'on two' } })
  t.equal(created.statusCode, 201, 'a token made on one works on two')
  const id = (created.json() as { id: number }).id
  t.equal((await two.inject({ url: `/todos/${id}`, headers: ada.auth })).statusCode, 200)
  const [{ id: tokenId } = { id: 0 }] = (await one.inject({ url: '/tokens', headers: ada.auth })).json() as Array<{ id: number }>
  t.equal((await one.inject({ method: 'DELETE', url: `/tokens/${tokenId}`, headers: ada.auth })).statusCode, 204)
  for (const [route, request] of [
    ['GET item', { url: `/todos/${id}` }],
    ['GET list', { url: '/todos' }],
    ['PATCH', { method: 'PATCH', url: `/todos/${id}`, payload: { title: 'x' } }],
    ['DELETE', { method: 'DELETE', url: `/todos/${id}` }],
    ['DELETE all', { method: 'DELETE', url: '/todos' }],
    ['tokens', { url: '/tokens' }]
  ] as const) {
    expectProblem(t, await two.inject({ ...request, headers: ada.auth } as never), 401, { code: 'UNAUTHENTICATED' }, `instance two, ${route}`)
  }
  t.same(await sql(db, 'SELECT title FROM todos'), [{ title: 'on two' }], 'the row is untouched')
})

t.test('an expired token is refused; an expiry in the past is a 400', async (t) => {
  const { app, db } = await buildTestApp(t, { env: REQUIRED })
  const ada = await signUp(t, app, 'ada@example.com')
  const soon = new Date(Date.now() + 60_000).toISOString()
  const made = await app.inject({ method: 'POST', url: '/tokens', payload: { email: ada.email, password: 'correct horse battery', expires_at: soon } })
  t.equal(made.statusCode, 201)
  t.equal((made.json() as { expires_at: string }).expires_at, soon)
  const auth = { authorization: `Bearer ${(made.json() as { token: string }).token}` }
  t.equal((await app.inject({ url: '/todos', headers: auth })).statusCode, 200, 'works until it expires')
  await sql(db, `UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE expires_at IS NOT NULL`)
  expectProblem(t, await app.inject({ url: '/todos', headers: auth }), 401, { code: 'UNAUTHENTICATED' }, 'expired')
  expectProblem(
    t,
    await app.inject({ method: 'POST', url: '/tokens', payload: { email: ada.email, password: 'correct horse battery', expires_at: '2020-01-01T00:00:00Z' } }),
    400,
    { errors: [{ in: 'body', field: 'expires_at' }] }
  )
})

t.test('unknown email, wrong password, no token, unknown token, revoked token: the same answer', async (t) => {
  const { app } = await buildTestApp(t, { env: REQUIRED })
  const ada = await signUp(t, app, 'ada@example.com')
  const unknownEmail = await app.inject({ method: 'POST', url: '/tokens', payload: { email: 'nobody@example.com', password: 'correct horse battery' } })
  const wrongPassword = await app.inject({ method: 'POST', url: '/tokens', payload: { email: ada.email, password: 'wrong horse battery' } })
  const [tokenId] = ((await app.inject({ url: '/tokens', headers: ada.auth })).json() as Array<{ id: number }>).map((token) => token.id)
  await app.inject({ method: 'DELETE', url: `/tokens/${tokenId}`, headers: ada.auth })
  const revoked = await app.inject({ url: '/todos/1', headers: ada.auth })
  const unknownToken = await app.inject({ url: '/todos/1', headers: { authorization: `Bearer ${newToken().secret}` } })
  const malformed = await app.inject({ url: '/todos/1', headers: { authorization: 'Bearer not-a-token' } })
  const basic = await app.inject({ url: '/todos/1', headers: { authorization: 'Basic YWRhOnB3' } })
  const none = await app.inject({ url: '/todos/1' })

  // Each answer names its own request; the rest must not differ.
  const body = (response: typeof none) => {
    const { instance: _instance, request_id: _id, ...rest } = response.json() as Record<string, unknown>
    return rest
  }
  const withoutId = (response: typeof none) => {
    const { request_id: _id, ...rest } = response.json() as Record<string, unknown>
    return rest
  }
  for (const [label, response] of Object.entries({ unknownEmail, wrongPassword, revoked, unknownToken, malformed, basic, none })) {
    expectProblem(t, response, 401, { code: 'UNAUTHENTICATED' }, label)
    t.same(body(response), body(unknownEmail), `${label}: the same body`)
    t.match(response.headers['www-authenticate'], /^Bearer realm="todos-api"/, `${label}: WWW-Authenticate: Bearer`)
  }
  t.equal(none.headers['www-authenticate'], 'Bearer realm="todos-api"', 'no credentials: no error code (RFC 6750 §3.1)')
  t.equal(unknownEmail.headers['www-authenticate'], wrongPassword.headers['www-authenticate'])
  t.same(withoutId(unknownEmail), withoutId(wrongPassword), 'unknown email and wrong password: identical, instance included')
  t.same(withoutId(revoked), withoutId(unknownToken), 'revoked and unknown token: identical, instance included')
  t.equal(revoked.headers['www-authenticate'], unknownToken.headers['www-authenticate'])
})

t.test("a second user who knows the first user's ids, cursors and ETags gets nothing, and changes nothing", async (t) => {
  const { app, db } = await buildTestApp(t, { env: REQUIRED })
  const ada = await signUp(t, app, 'ada@example.com')
  const bob = await signUp(t, app, 'bob@example.com')
  const ids: number[] = []
  for (let i = 1; i <= 5; i++) {
    const response = await app.inject({ method: 'POST', url: '/todos', headers: ada.auth, payload: { title: `ada ${i}`, order: i } })
    ids.push((response.json() as { id: number }).id)
  }
  const cat = (await app.inject({ method: 'POST', url: '/cats', headers: ada.auth, payload: { name: 'Tom', price: 100 } })).json() as { id: number }
  const page = await app.inject({ url: '/todos?limit=2', headers: ada.auth })
  const next = nextLink(page.headers.link)
  t.ok(next, "ada's first page has a next link")
  const item = await app.inject({ url: `/todos/${ids[0]}`, headers: ada.auth })
  const etag = item.headers.etag as string
  const before = await sql(db, 'SELECT * FROM todos ORDER BY id')
  const catsBefore = await sql(db, 'SELECT * FROM cats ORDER BY id')

  const as = (request: Record<string, unknown>) => app.inject({ ...request, headers: { ...bob.auth, ...(request.headers as object) } } as never)
  t.same((await as({ url: '/todos' })).json(), [], 'the list is empty')
  t.equal((await as({ url: '/todos?count=true' })).headers['x-total-count'], '0', 'and so is the count')
  t.same((await as({ url: next })).json(), [], "ada's cursor gives an empty page")
  t.same((await as({ url: '/cats' })).json(), [])
  for (const id of ids) {
    expectProblem(t, await as({ url: `/todos/${id}` }), 404, { code: 'NOT_FOUND' }, `GET ${id}`)
    expectProblem(t, await as({ url: `/todos/${id}`, headers: { 'if-none-match': etag } }), 404, {}, `GET ${id} with ada's ETag`)
    expectProblem(t, await as({ method: 'PATCH', url: `/todos/${id}`, payload: { title: 'bob was here' } }), 404, {}, `PATCH ${id}`)
    expectProblem(t, await as({ method: 'PATCH', url: `/todos/${id}`, headers: { 'if-match': etag }, payload: { completed: true } }), 412, {}, `PATCH ${id} with ada's ETag: no match, as for a missing item`)
    expectProblem(t, await as({ method: 'DELETE', url: `/todos/${id}` }), 404, {}, `DELETE ${id}`)
    expectProblem(t, await as({ method: 'DELETE', url: `/todos/${id}`, headers: { 'if-match': '*' } }), 412, {}, `DELETE ${id} If-Match: *`)
  }
  expectProblem(t, await as({ url: `/cats/${cat.id}` }), 404)
  expectProblem(t, await as({ method: 'PATCH', url: `/cats/${cat.id}`, payload: { price: 1 } }), 404)
  expectProblem(t, await as({ method: 'DELETE', url: `/cats/${cat.id}` }), 404)
  t.equal((await as({ method: 'DELETE', url: '/todos' })).statusCode, 204, "DELETE /todos empties bob's list only")
  const adaTokens = (await app.inject({ url: '/tokens', headers: ada.auth })).json() as Array<{ id: number }>
  expectProblem(t, await as({ method: 'DELETE', url: `/tokens/${adaTokens[0]?.id}` }), 404, {}, "ada's token id")
  t.equal((await as({ url: '/tokens' })).json().length, 1, 'bob sees only his own token')

  t.same(await sql(db, 'SELECT * FROM todos ORDER BY id'), before, "ada's todos are exactly as they were")
  t.same(await sql(db, 'SELECT * FROM cats ORDER BY id'), catsBefore, 'and her cat')
  t.equal((await app.inject({ url: '/todos', headers: ada.auth })).json().length, 5, 'ada still sees all five')
  t.equal((await app.inject({ url: `/todos/${ids[0]}`, headers: ada.auth })).statusCode, 200, 'and her token still works')
})

t.test('PATCH /users/me: a new password needs the old one and revokes the other tokens', async (t) => {
  const { app } = await buildTestApp(t, { env: REQUIRED })
  const ada = await signUp(t, app, 'ada@example.com')
  const second = (await app.inject({ method: 'POST', url: '/tokens', payload: { email: ada.email, password: 'correct horse battery' } })).json() as { token: string }
  const other = { authorization: `Bearer ${second.token}` }
  expectProblem(t, await app.inject({ method: 'PATCH', url: '/users/me', headers: ada.auth, payload: { password: 'a new password' } }), 403, { code: 'CURRENT_PASSWORD_REQUIRED' })
  expectProblem(t, await app.inject({ method: 'PATCH', url: '/users/me', headers: ada.auth, payload: { password: 'a new password', current_password: 'wrong' } }), 403)
  t.equal((await app.inject({ url: '/todos', headers: other })).statusCode, 200, 'nothing revoked by a refused change')
  const renamed = await app.inject({ method: 'PATCH', url: '/users/me', headers: ada.auth, payload: { name: 'Ada L.' } })
  t.match(renamed.json(), { name: 'Ada L.' })
  t.equal((await app.inject({ url: '/todos', headers: other })).statusCode, 200, 'a new name revokes nothing')
  const changed = await app.inject({ method: 'PATCH', url: '/users/me', headers: ada.auth, payload: { password: 'a new password', current_password: 'correct horse battery' } })
  t.equal(changed.statusCode, 200)
  t.equal((await app.inject({ url: '/todos', headers: ada.auth })).statusCode, 200, 'the token used for the change keeps working')
  expectProblem(t, await app.inject({ url: '/todos', headers: other }), 401, {}, 'the other token is revoked')
  expectProblem(t, await app.inject({ method: 'POST', url: '/tokens', payload: { email: ada.email, password: 'correct horse battery' } }), 401, {}, 'the old password is refused')
  t.equal((await app.inject({ method: 'POST', url: '/tokens', payload: { email: ada.email, password: 'a new password' } })).statusCode, 201, 'the new one works')
})

t.test('DELETE /users/me deletes the account with its rows; the local user cannot be deleted', async (t) => {
  const { app, db } = await buildTestApp(t, { env: { AUTH_MODE: 'local' } })
  const ada = await signUp(t, app, 'ada@example.com')
  await app.inject({ method: 'POST', url: '/todos', headers: ada.auth, payload: { title: "ada's" } })
  await app.inject({ method: 'POST', url: '/todos', payload: { title: "the local user's" } })
  t.equal((await app.inject({ method: 'DELETE', url: '/users/me', headers: ada.auth })).statusCode, 204)
  t.same(await sql(db, 'SELECT title FROM todos'), [{ title: "the local user's" }], 'her todos went with her; nobody else lost any')
  t.same(await sql(db, `SELECT count(*)::int AS n FROM api_tokens`), [{ n: 0 }], 'and her tokens')
  expectProblem(t, await app.inject({ url: '/users/me', headers: ada.auth }), 401)
  expectProblem(t, await app.inject({ method: 'DELETE', url: '/users/me' }), 409, { code: 'BUILTIN_USER' })
})

t.test('AUTH_MODE=local: no token acts as the local user, a token as its user', async (t) => {
  const { app } = await buildTestApp(t, { env: { AUTH_MODE: 'local' } })
  const ada = await signUp(t, app, 'ada@example.com')
  t.equal((await app.inject({ method: 'POST', url: '/todos', payload: { title: 'local' } })).statusCode, 201)
  t.equal((await app.inject({ method: 'POST', url: '/todos', headers: ada.auth, payload: { title: 'ada' } })).statusCode, 201)
  t.match((await app.inject('/todos')).json(), [{ title: 'local' }])
  t.match((await app.inject({ url: '/todos', headers: ada.auth })).json(), [{ title: 'ada' }])
  t.match((await app.inject('/users/me')).json(), { email: 'local@todos-api.invalid' })
  expectProblem(t, await app.inject({ url: '/todos', headers: { authorization: `Bearer ${newToken().secret}` } }), 401, {}, 'a bad token is still refused')
})

t.test('SIGNUP=closed refuses sign-up; tokens still work', async (t) => {
  const { app, db } = await buildTestApp(t, { env: { ...REQUIRED, SIGNUP: 'closed' } })
  expectProblem(t, await app.inject({ method: 'POST', url: '/users', payload: { email: 'ada@example.com', name: 'Ada', password: 'correct horse battery' } }), 403, { code: 'SIGNUP_CLOSED' })
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM users WHERE NOT builtin'), [{ n: 0 }])
})

t.test('bad input to the account routes: 400, and nothing stored', async (t) => {
  const { app, db } = await buildTestApp(t, { env: REQUIRED })
  for (const [label, payload] of [
    ['no email', { name: 'x', password: 'long enough' }],
    ['not an email', { email: 'nope', name: 'x', password: 'long enough' }],
    ['short password', { email: 'a@example.com', name: 'x', password: 'short' }],
    ['a password one character too long', { email: 'a@example.com', name: 'x', password: 'x'.repeat(257) }],
    ['blank name', { email: 'a@example.com', name: '   ', password: 'long enough' }],
    ['unknown field', { email: 'a@example.com', name: 'x', password: 'long enough', admin: true }]
  ] as const) {
    expectProblem(t, await app.inject({ method: 'POST', url: '/users', payload: payload as object }), 400, { code: 'VALIDATION_FAILED' }, label)
  }
  expectProblem(t, await app.inject({ method: 'POST', url: '/tokens', payload: { email: 'a@example.com', password: 'x'.repeat(257) } }), 400, {}, 'too long a password: refused before hashing')
  // Past a few short fields, an account body is not even read (16 KiB).
  expectProblem(t, await app.inject({ method: 'POST', url: '/users', payload: { email: 'a@example.com', name: 'x', password: 'x'.repeat(100_000) } }), 413, {}, 'huge password')
  expectProblem(t, await app.inject({ method: 'POST', url: '/tokens', payload: { email: 'a@example.com', password: 'x'.repeat(100_000) } }), 413, {}, 'huge password: refused before hashing')
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM users WHERE NOT builtin'), [{ n: 0 }])
})

t.test('token creation and sign-up are rate-limited per client address and per email: 429 problem+json with Retry-After', async (t) => {
  const { app, db } = await buildTestApp(t, { env: { ...REQUIRED, AUTH_RATE_LIMIT: '3' } })
  const attempt = (email: string, remoteAddress = '192.0.2.1') =>
    app.inject({ method: 'POST', url: '/tokens', remoteAddress, payload: { email, password: 'guess guess' } })
  for (let i = 0; i < 3; i++) t.equal((await attempt(`user${i}@example.com`)).statusCode, 401, `attempt ${i + 1} from one address: a normal 401`)
  const limited = await attempt('user9@example.com')
  expectProblem(t, limited, 429, { code: 'RATE_LIMITED' }, 'the fourth from that address')
  t.match(limited.headers['retry-after'], /^\d+$/)
  t.ok(Number(limited.headers['retry-after']) > 0 && Number(limited.headers['retry-after']) <= 60)
  t.equal((await attempt('user9@example.com', '192.0.2.2')).statusCode, 401, 'another address is not limited')
  // Per email from anywhere at ten times the limit (so one address cannot lock an owner out).
  for (let i = 0; i < 29; i++) await attempt('target@example.com', `198.51.${i + 10}.1`)
  t.equal((await attempt('target@example.com', '198.51.100.1')).statusCode, 401, 'thirty for one email from thirty networks...')
  expectProblem(t, await attempt('target@example.com', '198.51.101.1'), 429, {}, '...and the next for that email is limited from any address')
  const signups = []
  for (let i = 0; i < 4; i++) signups.push(await app.inject({ method: 'POST', url: '/users', remoteAddress: '203.0.113.5', payload: { email: `new${i}@example.com`, name: 'n', password: 'long enough' } }))
  t.same(signups.map((response) => response.statusCode), [201, 201, 201, 429], 'sign-up too')
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM users WHERE NOT builtin'), [{ n: 3 }], 'the limited one created nothing')
})

t.test('an unknown email costs a password hash too, so its answer does not come back sooner', async (t) => {
  const { app } = await buildTestApp(t, { env: { ...REQUIRED, PASSWORD_HASH_COST: '14' } })
  await signUp(t, app, 'ada@example.com')
  const timed = async (email: string) => {
    const started = process.hrtime.bigint()
    const response = await app.inject({ method: 'POST', url: '/tokens', payload: { email, password: 'wrong horse battery' } })
    t.equal(response.statusCode, 401)
    return Number(process.hrtime.bigint() - started) / 1e6
  }
  // scrypt at the default parameters takes tens of milliseconds at the very least; an answer
  // that skipped it would take about one.
  const unknown = await timed('nobody@example.com')
  const wrong = await timed('ada@example.com')
  t.ok(unknown > 20, `unknown email: ${unknown.toFixed(1)} ms, a hash was computed`)
  t.ok(wrong > 20, `wrong password: ${wrong.toFixed(1)} ms`)
})

t.test('a token asked for with the old password while the password changes never outlives the change', async (t) => {
  const { app } = await buildTestApp(t, { env: { ...REQUIRED, AUTH_RATE_LIMIT: '1000' } })
  const ada = await signUp(t, app, 'ada@example.com')
  // Directly: a token for a hash that is no longer the password is not made.
  t.equal(await app.auth.accounts.createToken(ada.id, 'stale', null, 'scrypt$16384$8$5$c3RhbGU=$c3RhbGU='), undefined, 'no token for a password that changed')
  // Racing over HTTP: whatever the timing, no token made with the old password works afterwards.
  // A change takes two hashes (the old password, the new one), a sign-in one: starting the
  // sign-in later and later moves its read of the hash across the change's commit.
  let password = 'correct horse battery'
  const delays = [0, 60, 120, 160, 200, 240, 280, 320, 400]
  for (let round = 0; round < delays.length; round++) {
    const next = `new password ${round}`
    const [changed, asked] = await Promise.all([
      app.inject({ method: 'PATCH', url: '/users/me', headers: ada.auth, payload: { password: next, current_password: password } }),
      new Promise((resolve) => setTimeout(resolve, delays[round])).then(() => app.inject({ method: 'POST', url: '/tokens', payload: { email: ada.email, password } }))
    ])
    t.equal(changed.statusCode, 200)
    if (asked.statusCode === 201) {
      const stale = { authorization: `Bearer ${(asked.json() as { token: string }).token}` }
      expectProblem(t, await app.inject({ url: '/users/me', headers: stale }), 401, {}, `round ${round}: the token made with the old password is refused`)
    } else {
      t.equal(asked.statusCode, 401, `round ${round}: or it was never made`)
    }
    password = next
  }
})

t.test('a sign-in with the old password and a password change, each holding the user when the other arrives: no token outlives the change', async (t) => {
  const { app, db } = await buildTestApp(t, { env: { ...REQUIRED, AUTH_RATE_LIMIT: '1000' } })
  const ada = await signUp(t, app, 'ada@example.com')
  // A connection of the test's own holds row locks, so each ordering happens for certain.
  const holder = new pg.Client({ connectionString: db })
  await holder.connect()
  t.teardown(() => holder.end())
  const waitingOnLocks = async (count: number) => {
    for (let i = 0; i < 400; i++) {
      const [row] = await sql<{ n: number }>(db, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
      if ((row?.n ?? 0) >= count) return
      await sleep(25)
    }
    throw new Error(`fewer than ${count} statements came to wait on a lock`)
  }
  const signIn = (password: string) => app.inject({ method: 'POST', url: '/tokens', payload: { email: ada.email, password } })
  const refused = async (answer: { statusCode: number; json(): unknown }, label: string) => {
    if (answer.statusCode === 201) {
      const stale = { authorization: `Bearer ${(answer.json() as { token: string }).token}` }
      expectProblem(t, await app.inject({ url: '/users/me', headers: stale }), 401, {}, `${label}: its token is refused`)
    } else {
      t.equal(answer.statusCode, 401, `${label}: or it got no token`)
    }
  }

  // 1. The change starts while a sign-in already holds the row (as createToken does, FOR
  //    SHARE): its UPDATE waits, and a sign-in with the old password makes a token
  //    meanwhile. Its revocation, a statement of its own, must still see that token.
  await holder.query('BEGIN')
  await holder.query('SELECT 1 FROM users WHERE id = $1 FOR SHARE', [ada.id])
  const change = app.inject({ method: 'PATCH', url: '/users/me', headers: ada.auth, payload: { password: 'new password 1', current_password: 'correct horse battery' } })
  await waitingOnLocks(1)
  const during = signIn('correct horse battery')
  await sleep(300) // the sign-in hashes, then makes its token (or queues behind the change)
  await holder.query('COMMIT')
  t.equal((await change).statusCode, 200, 'the password changed')
  await refused(await during, 'a sign-in with the old password while the change waited')
  t.equal((await app.inject({ url: '/users/me', headers: ada.auth })).statusCode, 200, 'the token the change was made with still works')

  // 2. The change holds the row (its UPDATE is done, its revocation waits on a token row
  //    the test holds): a sign-in with the old password waits for it, then finds the
  //    password changed.
  const other = (await signIn('new password 1').then((answer) => answer.json())) as { id: number }
  await holder.query('BEGIN')
  await holder.query('SELECT 1 FROM api_tokens WHERE id = $1 FOR UPDATE', [other.id])
  const second = app.inject({ method: 'PATCH', url: '/users/me', headers: ada.auth, payload: { password: 'new password 2', current_password: 'new password 1' } })
  await waitingOnLocks(1)
  const late = signIn('new password 1')
  await waitingOnLocks(2)
  await holder.query('COMMIT')
  t.equal((await second).statusCode, 200, 'the password changed again')
  await refused(await late, 'a sign-in with the old password while the change held the row')
})

t.test('a password change that runs out of time half-way: 503, and neither its new password nor its revocation is kept', async (t) => {
  const { app, db } = await buildTestApp(t, { env: { ...REQUIRED, AUTH_RATE_LIMIT: '1000', DATABASE_STATEMENT_TIMEOUT_MS: '1000' } })
  const ada = await signUp(t, app, 'ada@example.com')
  const other = (await app.inject({ method: 'POST', url: '/tokens', payload: { email: ada.email, password: 'correct horse battery' } })).json() as { id: number; token: string }
  // The password is changed, then the revocation waits on a token row the test holds, past the limit.
  const holder = new pg.Client({ connectionString: db })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('BEGIN')
  await holder.query('SELECT 1 FROM api_tokens WHERE id = $1 FOR UPDATE', [other.id])
  const change = await app.inject({ method: 'PATCH', url: '/users/me', headers: ada.auth, payload: { password: 'never kept 1', current_password: 'correct horse battery' } })
  await holder.query('COMMIT')
  expectProblem(t, change, 503, {}, 'the statement limit')
  t.match(change.headers['retry-after'], /^\d+$/, 'safe to retry: nothing was kept')
  const signIn = (password: string) => app.inject({ method: 'POST', url: '/tokens', payload: { email: ada.email, password } })
  t.equal((await signIn('correct horse battery')).statusCode, 201, 'the old password still works')
  t.equal((await signIn('never kept 1')).statusCode, 401, 'the new one was rolled back')
  t.equal((await app.inject({ url: '/users/me', headers: { authorization: `Bearer ${other.token}` } })).statusCode, 200, 'and no token was revoked')
})

t.test('nobody can give the built-in local user an email or a password, so nobody can sign in as it', async (t) => {
  const { app } = await buildTestApp(t, { env: { AUTH_MODE: 'local' } })
  expectProblem(t, await app.inject({ method: 'PATCH', url: '/users/me', payload: { password: 'attacker-pass-1' } }), 409, { code: 'BUILTIN_USER' })
  expectProblem(t, await app.inject({ method: 'PATCH', url: '/users/me', payload: { email: 'evil@example.com' } }), 409, { code: 'BUILTIN_USER' })
  t.match((await app.inject({ method: 'PATCH', url: '/users/me', payload: { name: 'Me, locally' } })).json(), { name: 'Me, locally' }, 'its name can change')
  expectProblem(t, await app.inject({ method: 'POST', url: '/tokens', payload: { email: 'local@todos-api.invalid', password: 'anything at all' } }), 401, {}, 'and it has no password to sign in with')
})

t.test('PATCH /users/me is rate-limited per caller: a stolen token cannot guess the current password', async (t) => {
  const { app } = await buildTestApp(t, { env: { ...REQUIRED, AUTH_RATE_LIMIT: '3' } })
  await app.inject({ method: 'POST', url: '/users', remoteAddress: '192.0.2.50', payload: { email: 'ada@example.com', name: 'Ada', password: 'correct horse battery' } })
  const { token } = (await app.inject({ method: 'POST', url: '/tokens', remoteAddress: '192.0.2.51', payload: { email: 'ada@example.com', password: 'correct horse battery' } })).json() as { token: string }
  const guess = (i: number) =>
    app.inject({ method: 'PATCH', url: '/users/me', remoteAddress: `198.51.100.${i}`, headers: { authorization: `Bearer ${token}` }, payload: { password: 'taken over!', current_password: `guess ${i}` } })
  for (let i = 0; i < 3; i++) expectProblem(t, await guess(i), 403, {}, `guess ${i + 1}: wrong`)
  const limited = await guess(9)
  expectProblem(t, await guess(10), 429, { code: 'RATE_LIMITED' }, 'the token is limited, from any address')
  t.equal(limited.statusCode, 429)
})
