/**
 * RATE_LIMIT_PER_MINUTE: per-caller quotas shared by every instance through PostgreSQL,
 * over real HTTP, with two instances on one database (accounts/quotas.ts).
 */
import t from 'tap'
import { FLUSH_MS } from '../../src/accounts/quotas.js'
import { expectProblem, listeningTestApp, sql, usersWithTokens } from '../helper.js'
import type { HttpAnswer } from '../support/http.js'

const LIMIT = 20
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('two instances on one database allow the limit once between them, with RateLimit headers; a restarted one remembers', async (t) => {
  const env = { AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: String(LIMIT) }
  const one = await listeningTestApp(t, { env })
  const other = await listeningTestApp(t, { connectionString: one.db, env })
  const { ada, bob } = await usersWithTokens(one.db, ['ada', 'bob'])

  const first = await one.http(ada.headers).get('/todos')
  t.equal(first.statusCode, 200)
  t.equal(first.headers['ratelimit-policy'], `"minute";q=${LIMIT};w=60`, 'RateLimit-Policy: the quota and its window')
  t.match(first.headers.ratelimit, /^"minute";r=19;t=(60|59)$/, 'RateLimit: what is left, and when the window ends')

  // Requests alternate between the instances, a little slower than they share their counts.
  let allowed = 1
  const answers: HttpAnswer[] = []
  for (let i = 0; i < 2 * LIMIT; i++) {
    const answer = await (i % 2 ? other : one).http(ada.headers).get('/todos')
    answers.push(answer)
    if (answer.statusCode === 200) allowed++
    await pause(FLUSH_MS / 4)
  }
  t.ok(allowed >= LIMIT && allowed <= LIMIT + 4, `${allowed} allowed of ${2 * LIMIT + 1}, where each instance alone would allow ${LIMIT}`)
  const refused = answers.at(-1) as HttpAnswer
  expectProblem(t, refused, 429, { code: 'RATE_LIMITED' }, 'past it')
  t.ok(Number(refused.headers['retry-after']) >= 1, 'with Retry-After')
  t.match(refused.headers.ratelimit, /^"minute";r=0;t=\d+$/)
  t.equal((await other.http(bob.headers).get('/todos')).statusCode, 200, "another caller's quota is their own")

  // A third instance, as after a restart: it reads the count before it admits anyone.
  await pause(2 * FLUSH_MS)
  const restarted = await listeningTestApp(t, { connectionString: one.db, env })
  expectProblem(t, await restarted.http(ada.headers).get('/todos'), 429, { code: 'RATE_LIMITED' }, 'a new instance knows the count at once')
})

t.test('a made-up token is not counted, and RATE_LIMIT_PER_MINUTE=0 turns quotas off', async (t) => {
  const limited = await listeningTestApp(t, { env: { AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '5' } })
  const before = await sql<{ n: number }>(limited.db, 'SELECT count(*)::int AS n FROM rate_limits')
  for (let i = 0; i < 10; i++) expectProblem(t, await limited.http({ authorization: `Bearer tapi_${'x'.repeat(43)}` }).get('/todos'), 401, {}, `made-up token ${i}`)
  await pause(2 * FLUSH_MS)
  t.same(await sql(limited.db, 'SELECT count(*)::int AS n FROM rate_limits'), before, 'no counter for it')

  const off = await listeningTestApp(t, { env: { AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0' } })
  const { ada } = await usersWithTokens(off.db, ['ada'])
  for (let i = 0; i < 8; i++) t.equal((await off.http(ada.headers).get('/todos')).statusCode, 200)
  const answer = await off.http(ada.headers).get('/todos')
  t.equal(answer.headers.ratelimit, undefined, 'no RateLimit header')
  t.equal(answer.headers['ratelimit-policy'], undefined)
})
