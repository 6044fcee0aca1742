/**
 * Failover (issue 28): the database goes away under keyed writes, and the service carries on.
 * - A killed API process: the embedded PostgreSQL 18 of the test run.
 * - A killed primary: etcd, two PostgreSQL 15 nodes under Patroni and HAProxy, from
 *   Debian's packages (installed by the test setup), run by src/dev/ha-stack.ts with the
 *   configuration files compose.ha.yaml ships (docker/patroni, docker/haproxy).
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { createHaStack } from '../../src/dev/ha-stack.js'
import { ROOT, freshDatabase, sql, startServer } from '../helper.js'
import { HA_TEST_PREFIX } from '../setup/cluster.js'
import { startPgBouncer } from '../support/pgbouncer.js'
import { freePort } from '../support/ports.js'
import { waitReady } from '../support/processes.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A keyed create: the key is the title too, so the rows can be counted per key. */
const post = (url: string, key: string) =>
  fetch(`${url}/todos`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify({ title: key }), signal: AbortSignal.timeout(10_000) }).then(
    async (answer) => ({ status: answer.status, body: await answer.text(), replayed: answer.headers.get('idempotent-replayed') === 'true' }),
    () => ({ status: 0, body: '', replayed: false })
  )

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await check()); await sleep(50)) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
  }
}

t.test('keyed POSTs in flight when the API process is killed: their keys are free as soon as it is back, one row each', async (t) => {
  const db = await freshDatabase(t)
  const env = { DATABASE_URL: db, MIGRATE_ON_START: 'false', LOG_LEVEL: 'warn', RATE_LIMIT_PER_MINUTE: '0', PORT: String(await freePort()) }
  const first = await startServer(t, env)
  await waitReady(first.url)
  // The creates stop at their last statement (recording the key), their keys taken, and wait there.
  const blocker = new pg.Client({ connectionString: db })
  await blocker.connect()
  t.teardown(() => blocker.end())
  await blocker.query('BEGIN')
  await blocker.query('LOCK TABLE idempotency_keys IN SHARE MODE')
  const keys = Array.from({ length: 8 }, () => randomUUID())
  const inFlight = keys.map((key) => post(first.url, key))
  await until('8 creates waiting in the database', async () => {
    const [row] = await sql<{ n: number }>(db, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'todos-api' AND wait_event_type = 'Lock'")
    return row?.n === 8
  })
  first.child.kill('SIGKILL')
  await first.exited
  t.same(new Set((await Promise.all(inFlight)).map((answer) => answer.status)), new Set([0]), 'the clients lost their connections')
  await blocker.query('COMMIT')

  const second = await startServer(t, env)
  await waitReady(second.url)
  const started = Date.now()
  const retries = await Promise.all(keys.map((key) => post(second.url, key)))
  t.comment(`8 retries answered ${Date.now() - started} ms after the restarted API was ready`)
  t.same(retries.map((answer) => answer.status), Array(8).fill(201), 'every retry creates (nothing had committed), none is told the key is in use')
  t.same(await sql(db, 'SELECT title, count(*)::int AS n FROM todos GROUP BY title HAVING count(*) > 1'), [], 'one row per key')
  t.equal((await sql<{ n: number }>(db, 'SELECT count(*)::int AS n FROM todos'))[0]?.n, 8)
})

t.test('the primary killed under keyed writes: no acknowledged write lost, one row per key, writes again within 10 s, readiness red and back by itself', async (t) => {
  const port = () => freePort()
  const stack = createHaStack({
    dir: join(ROOT, '.data', `${HA_TEST_PREFIX}${process.pid}`),
    ports: { etcd: await port(), etcdPeer: await port(), primary: await port(), stats: await port(), nodes: [ { pg: await port(), rest: await port() }, { pg: await port(), rest: await port() } ] }
  })
  t.teardown(() => stack.stop({ remove: true }))
  await stack.start()
  // Two replicas: one straight through HAProxy, one as compose.ha.yaml runs them (requests
  // through PgBouncer, docker/pgbouncer, in front of HAProxy; migrations straight through HAProxy).
  const bouncer = await startPgBouncer(t, stack.url)
  const env = { LOG_LEVEL: 'error', RATE_LIMIT_PER_MINUTE: '0', DATABASE_CONNECT_TIMEOUT_MS: '2000', MIGRATE_ON_START: 'true' }
  const apis = [
    // A short statement limit, for the COMMIT that waits for the standby below.
    { name: 'through HAProxy', server: await startServer(t, { ...env, DATABASE_URL: stack.url, DATABASE_STATEMENT_TIMEOUT_MS: '1500' }) },
    { name: 'through PgBouncer and HAProxy', server: await startServer(t, { ...env, DATABASE_URL: bouncer.through(stack.url), MIGRATION_DATABASE_URL: stack.url, DATABASE_PREPARED_STATEMENTS: 'false' }) }
  ]
  for (const { server } of apis) await waitReady(server.url)
  // Only the synchronous standby may be promoted: the kill waits for one.
  const standby = await stack.waitForSyncStandby()
  // A COMMIT the standby never confirms (its WAL sender frozen) is cancelled after the
  // statement limit, and PostgreSQL then answers it as committed, on the primary alone: the
  // client must not be told 201, or a failover now would lose an acknowledged write.
  const [sender] = await sql<{ pid: number }>(stack.url, 'SELECT pid FROM pg_stat_replication')
  t.ok(sender, 'the primary streams to the standby')
  process.kill(sender?.pid ?? 0, 'SIGSTOP')
  const unconfirmed = await post(apis[0]!.server.url, 'unconfirmed').finally(() => process.kill(sender?.pid ?? 0, 'SIGCONT'))
  t.equal(unconfirmed.status, 504, `a write the standby did not confirm is not acknowledged: ${unconfirmed.body.slice(0, 120)}`)
  t.match(JSON.parse(unconfirmed.body || '{}'), { code: 'OUTCOME_UNKNOWN' })
  const replayed = await post(apis[0]!.server.url, 'unconfirmed')
  t.same([replayed.status, replayed.replayed], [201, true], 'its retry, once the standby has it, gets the first answer')

  // A replica pointed at the standby by mistake (migrated: the schema came over by replication).
  const astray = await startServer(t, { ...env, DATABASE_URL: stack.nodeUrl(standby), MIGRATE_ON_START: 'false' })
  const readiness = (url: string) => fetch(`${url}/health/ready`).then(async (answer) => ({ status: answer.status, body: await answer.text() }), () => ({ status: 0, body: '' }))
  await until('the misdirected replica answers', async () => (await readiness(astray.url)).status !== 0, 90_000)
  const misdirected = await readiness(astray.url)
  t.equal(misdirected.status, 503, 'a replica on a standby is not ready')
  t.match(JSON.parse(misdirected.body), { checks: { database: { status: 'failing', code: 'DATABASE_NOT_PRIMARY' } } })

  // Four writers per replica, each creating one todo after another with a new key,
  // retrying a key on 503, 504, 409 and lost connections until it is acknowledged.
  const acknowledged = new Map<string, number>()
  const unexpected: string[] = []
  const unresolved: string[] = []
  let running = true
  let killedAt = 0
  const paths = apis.map(({ name, server }) => ({ name, url: server.url, counts: {} as Record<string, number>, recoveredAt: 0, readiness: [] as number[] }))
  const writer = async (path: (typeof paths)[number]) => {
    while (running) {
      const key = randomUUID()
      for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
        const sent = Date.now()
        const answer = await post(path.url, key)
        const outcome = answer.status === 201 && answer.replayed ? '201 replayed' : String(answer.status)
        path.counts[outcome] = (path.counts[outcome] ?? 0) + 1
        if (answer.status === 201) {
          acknowledged.set(key, (JSON.parse(answer.body) as { id: number }).id)
          if (killedAt > 0 && sent > killedAt && path.recoveredAt === 0) path.recoveredAt = Date.now()
          break
        }
        if (![0, 409, 503, 504].includes(answer.status)) unexpected.push(`${path.name}: ${answer.status} ${answer.body.slice(0, 200)}`)
        if (Date.now() > deadline) {
          unresolved.push(key)
          break
        }
      }
    }
  }
  const watch = async (path: (typeof paths)[number]) => {
    while (running) {
      const { status } = await readiness(path.url)
      if (path.readiness.at(-1) !== status) path.readiness.push(status)
      await sleep(100)
    }
  }
  const work = paths.flatMap((path) => [watch(path), ...Array.from({ length: 4 }, () => writer(path))])
  await sleep(2000)
  const before = acknowledged.size
  const killed = await stack.killLeader()
  killedAt = Date.now()
  await until('a write after the kill on every path', async () => paths.every((path) => path.recoveredAt > 0), 30_000).catch(() => {})
  await sleep(2000)
  running = false
  await Promise.all(work)

  t.comment(`killed ${killed.name}'s postmaster; ${before} creates acknowledged before the kill, ${acknowledged.size} in all`)
  for (const path of paths) {
    const recovery = path.recoveredAt - killedAt
    t.comment(`${path.name}: writes again after ${recovery} ms; answers ${JSON.stringify(path.counts)}; readiness ${path.readiness.join(' → ')}`)
    t.ok(path.recoveredAt > 0 && recovery < 10_000, `${path.name}: writes succeed again within 10 s of the kill (${recovery} ms)`)
    t.ok(path.readiness.includes(503) || path.readiness.includes(0), `${path.name}: readiness went red`)
    await waitReady(path.url, 20_000)
    t.pass(`${path.name}: and came back by itself`)
  }
  t.same(unexpected, [], 'every answer is 201, or 503/504/409 to retry')
  t.same(unresolved, [], 'every key was acknowledged in the end')

  const rows = await sql<{ id: number; title: string }>(stack.url, 'SELECT id, title FROM todos')
  const byTitle = new Map<string, number[]>()
  for (const row of rows) byTitle.set(row.title, [...(byTitle.get(row.title) ?? []), row.id])
  t.same([...acknowledged].filter(([key, id]) => !byTitle.get(key)?.includes(id)), [], `every acknowledged write is in the database (${acknowledged.size})`)
  t.same([...byTitle].filter(([, ids]) => ids.length > 1), [], 'no key produced two rows')

  await waitReady(astray.url, 20_000)
  t.pass('the replica pointed at the old standby turns ready by itself once that node is promoted')
})
