/**
 * Users, tokens and ownership (AUTH_MODE=required unless a test says otherwise): every
 * request says who it is, and nobody sees or touches another user's rows.
 */
import t from 'tap'
import { newToken } from '../../src/accounts/tokens.js'
import { buildTestApp, expectProblem, freshDatabase, sql } from '../helper.js'
import { REQUIRED, signUp } from '../support/accounts.js'
import { nextLink } from '../support/http.js'

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

