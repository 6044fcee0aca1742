/**
 * Credentials under attack: sign-in and sign-up rate limits, the time an unknown email
 * takes, password changes racing sign-ins, and the built-in local user, which nobody can
 * sign in as.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import t from 'tap'
import { buildTestApp, expectProblem, sql } from '../helper.js'
import { REQUIRED, signUp } from '../support/accounts.js'

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
