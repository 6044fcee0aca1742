/**
 * Idempotency-Key on creates, and the honest answer for a write whose outcome nobody
 * knows: real HTTP where it matters, a real PostgreSQL (frozen for real for the hang).
 */
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { runMigrations } from '../../src/db/migrate.js'
import { buildTestApp, expectProblem, sql, testConfig } from '../helper.js'
import { PrivateCluster } from '../support/private-cluster.js'

const json = { 'content-type': 'application/json' }

t.test('a retry with the same key and body replays the first answer; another body is a 422', async (t) => {
  const { app, db } = await buildTestApp(t)
  const post = (key: string, payload: object, headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url: '/todos', headers: { ...json, 'idempotency-key': key, ...headers }, payload })
  const first = await post('order-1', { title: 'pay the rent', order: 1 })
  t.equal(first.statusCode, 201)
  t.equal(first.headers['idempotent-replayed'], undefined, 'the first answer is not a replay')
  const again = await post('order-1', { order: 1, title: 'pay the rent' })
  t.equal(again.statusCode, 201, 'the same body (fields in another order): the same answer')
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.equal(again.body, first.body, 'byte for byte')
  t.equal(again.headers.location, first.headers.location)
  t.equal(again.headers.etag, first.headers.etag)
  t.equal(again.headers['content-type'], first.headers['content-type'])
  t.same(await sql(db, 'SELECT title FROM todos'), [{ title: 'pay the rent' }], 'one row')

  expectProblem(t, await post('order-1', { title: 'something else' }), 422, { code: 'IDEMPOTENCY_KEY_REUSED' })
  const otherResource = await app.inject({ method: 'POST', url: '/cats', headers: { ...json, 'idempotency-key': 'order-1' }, payload: { name: 'pay the rent', price: 1 } })
  expectProblem(t, otherResource, 422, {}, 'the same key on another resource is another request')
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM cats'), [{ n: 0 }])
  expectProblem(t, await post('', { title: 'x' }), 400, {}, 'an empty key')
  expectProblem(t, await post('a key with spaces', { title: 'x' }), 400, { code: 'INVALID_IDEMPOTENCY_KEY' }, 'a key with spaces')
  expectProblem(t, await post('k'.repeat(256), { title: 'x' }), 400, {}, 'a key too long')
  t.equal((await post('"quoted-key"', { title: 'quoted' })).statusCode, 201, 'the draft quotes keys as sf-strings')
  t.equal((await post('quoted-key', { title: 'quoted' })).headers['idempotent-replayed'], 'true', 'quoted or not, the same key')

  const invalid = await post('bad-1', { title: '' })
  expectProblem(t, invalid, 400, {}, 'a request refused before it writes...')
  t.equal((await post('bad-1', { title: 'fixed' })).statusCode, 201, '...does not use its key up')
  t.same(
    await sql(db, `SELECT DISTINCT round(extract(epoch FROM expires_at - created_at) / 3600)::int AS hours FROM idempotency_keys`),
    [{ hours: 24 }],
    'keys are kept 24 hours (IDEMPOTENCY_KEY_TTL_HOURS)'
  )
})

t.test('50 identical concurrent POSTs with one key create exactly one row', async (t) => {
  const { app, db } = await buildTestApp(t, { env: { DATABASE_POOL_MAX: '10' } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/todos`
  const answers = await Promise.all(
    Array.from({ length: 50 }, () =>
      fetch(url, { method: 'POST', headers: { ...json, 'idempotency-key': 'burst' }, body: '{"title":"exactly once"}' }).then(async (response) => ({
        status: response.status,
        replayed: response.headers.get('idempotent-replayed'),
        retryAfter: response.headers.get('retry-after'),
        location: response.headers.get('location'),
        body: await response.text()
      }))
    )
  )
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM todos'), [{ n: 1 }], 'one row')
  const created = answers.filter((answer) => answer.status === 201)
  t.equal(created.filter((answer) => answer.replayed === null).length, 1, 'one fresh 201')
  t.ok(new Set(created.map((answer) => answer.body)).size === 1 && new Set(created.map((answer) => answer.location)).size === 1, 'every 201 the same answer')
  const busy = answers.filter((answer) => answer.status === 409)
  t.ok(busy.every((answer) => answer.retryAfter === '1'), `the others (${busy.length}) are 409 with Retry-After`)
  t.equal(created.length + busy.length, 50, `201 or 409, nothing else (${JSON.stringify([...new Set(answers.map((a) => a.status))])})`)
})

t.test('keys are per user, expire and are reaped; a key abandoned in flight is taken over', async (t) => {
  const { app, db } = await buildTestApp(t, { env: { AUTH_MODE: 'local' } })
  await app.inject({ method: 'POST', url: '/users', payload: { email: 'ada@example.com', name: 'Ada', password: 'correct horse battery' } })
  const { token } = (await app.inject({ method: 'POST', url: '/tokens', payload: { email: 'ada@example.com', password: 'correct horse battery' } })).json() as { token: string }
  const post = (headers: Record<string, string>, title = 'shared key') =>
    app.inject({ method: 'POST', url: '/todos', headers: { ...json, 'idempotency-key': 'same', ...headers }, payload: { title } })
  t.equal((await post({})).statusCode, 201)
  const ada = await post({ authorization: `Bearer ${token}` })
  t.equal(ada.statusCode, 201)
  t.equal(ada.headers['idempotent-replayed'], undefined, "another user's key of the same name is another key")
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM todos'), [{ n: 2 }])

  // In flight: a claim with no answer yet.
  await sql(db, `INSERT INTO idempotency_keys (owner_id, key, fingerprint, claim, locked_at, expires_at)
    SELECT id, 'busy', sha256('x'), gen_random_uuid(), now(), now() + interval '1 day' FROM users WHERE builtin`)
  expectProblem(t, await post({ 'idempotency-key': 'busy' }), 422, {}, 'busy with another body: 422')
  await sql(db, `UPDATE idempotency_keys SET fingerprint = (SELECT fingerprint FROM idempotency_keys WHERE key = 'same' LIMIT 1) WHERE key = 'busy'`)
  const busy = await post({ 'idempotency-key': 'busy' })
  expectProblem(t, busy, 409, { code: 'IDEMPOTENCY_KEY_IN_USE' }, 'the same request while the first runs')
  t.equal(busy.headers['retry-after'], '1')
  // Given up on long ago (locked for longer than any statement can run): taken over.
  await sql(db, `UPDATE idempotency_keys SET locked_at = now() - interval '1 hour' WHERE key = 'busy'`)
  t.equal((await post({ 'idempotency-key': 'busy' })).statusCode, 201, 'an abandoned claim is taken over')

  // Expired: the key is free again, and the reaper deletes what has expired.
  await sql(db, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'same'`)
  const fresh = await post({}, 'shared key')
  t.equal(fresh.statusCode, 201)
  t.equal(fresh.headers['idempotent-replayed'], undefined, 'an expired key starts over')
  await sql(db, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`)
  t.equal(await app.idempotency.reap(), 3, 'the reaper deletes the expired keys')
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM idempotency_keys'), [{ n: 0 }])
  await sql(db, `INSERT INTO idempotency_keys (owner_id, key, fingerprint, claim, expires_at)
    SELECT (SELECT id FROM users WHERE builtin), 'old-' || i, sha256('x'), gen_random_uuid(), now() - interval '1 minute' FROM generate_series(1, 2500) i`)
  t.equal(await app.idempotency.reap(), 2500, 'a run deletes batch after batch, not one batch of 1000')
})

t.test('a write the database never confirmed: 504 OUTCOME_UNKNOWN, no Retry-After; the key tells the outcome afterwards', async (t) => {
  const cluster = await PrivateCluster.create(t)
  await runMigrations(cluster.connectionString)
  // No quota: its flush, a write every 200 ms, could take one of the open connections into the hang.
  const config = testConfig({ DATABASE_URL: cluster.connectionString, DATABASE_STATEMENT_TIMEOUT_MS: '1000', DATABASE_CONNECT_TIMEOUT_MS: '1000', RATE_LIMIT_PER_MINUTE: '0' })
  const app = await buildApp({ config, connectionString: cluster.connectionString, logger: false })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
  const send = async (method: string, path: string, headers: Record<string, string> = {}, payload?: object) => {
    const response = await fetch(`${base}${path}`, { method, headers: { ...json, ...headers }, ...(payload ? { body: JSON.stringify(payload) } : {}) })
    const body = await response.text()
    return { statusCode: response.status, headers: Object.fromEntries(response.headers), body, json: () => JSON.parse(body) as unknown }
  }
  // Two open pooled connections, as under load: each write during the hang has one, and is sent.
  t.equal((await send('POST', '/todos', {}, { title: 'warm' })).statusCode, 201)
  for (const client of await Promise.all([app.pg.pool.connect(), app.pg.pool.connect()])) client.release()

  await cluster.pause()
  const [plain, keyed] = await Promise.all([
    send('POST', '/todos', {}, { title: 'during the hang' }),
    send('POST', '/todos', { 'idempotency-key': 'hang-1' }, { title: 'keyed during the hang' })
  ])
  const read = await send('GET', '/todos/1')
  await cluster.resume()
  for (const [label, response] of [['without a key', plain]] as const) {
    const problem = expectProblem(t, response, 504, { code: 'OUTCOME_UNKNOWN' }, label)
    t.equal(response.headers['retry-after'], undefined, `${label}: no Retry-After: a blind retry could write twice`)
    t.match(problem.detail, /may or may not have been applied/)
  }
  // The keyed one either never got its claim (503, safe to retry) or got it and its write
  // was not confirmed (504): a retry with its key must end with exactly one row.
  t.ok([503, 504].includes(keyed.statusCode), `keyed during the hang: ${keyed.statusCode}`)
  expectProblem(t, read, 503, { code: 'DATABASE_UNAVAILABLE' }, 'a read is safe to retry: 503')
  t.match(read.headers['retry-after'], /^\d+$/)

  // After the hang: retrying with the key settles it, once.
  let settled
  for (let attempt = 0; attempt < 40; attempt++) {
    settled = await send('POST', '/todos', { 'idempotency-key': 'hang-1' }, { title: 'keyed during the hang' })
    if (settled.statusCode === 201) break
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  t.equal(settled?.statusCode, 201, 'the retry with the key gets a 201, fresh or replayed')
  t.same(await sql(cluster.connectionString, `SELECT count(*)::int AS n FROM todos WHERE title = 'keyed during the hang'`), [{ n: 1 }], 'exactly one row for the key')
})
