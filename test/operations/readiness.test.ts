import t from 'tap'
import { buildTestApp, expectProblem, freshDatabase } from '../helper.js'
import { PrivateCluster } from '../support/private-cluster.js'
import { runMigrations } from '../../src/db/migrate.js'

t.test('liveness answers ok without the database', async (t) => {
  const cluster = await PrivateCluster.create(t)
  await runMigrations(cluster.connectionString)
  const { app } = await buildTestApp(t, { connectionString: cluster.connectionString })
  await cluster.stop()
  const response = await app.inject('/health/live')
  t.equal(response.statusCode, 200)
  t.same(response.json(), { status: 'ok' })
})

t.test('readiness is green when the database answers and every migration is applied', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject('/health/ready')
  t.equal(response.statusCode, 200)
  t.equal(response.headers['cache-control'], 'no-store')
  t.match(response.json(), { status: 'ok', checks: { database: { status: 'ok' }, migrations: { status: 'ok' } } })
})

t.test('readiness is red, naming the check, while migrations are pending', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const { app } = await buildTestApp(t, { connectionString: db })
  const response = await app.inject('/health/ready')
  expectProblem(t, response, 503)
  t.equal(response.headers['retry-after'], '5')
  t.match(response.json(), {
    type: 'about:blank',
    title: 'Service Unavailable',
    status: 503,
    code: 'NOT_READY',
    detail: /migrations check failed \(MIGRATIONS_PENDING\)/,
    checks: { database: { status: 'ok' }, migrations: { status: 'failing', code: 'MIGRATIONS_PENDING' } }
  })
  const todos = await app.inject('/todos')
  t.equal(todos.statusCode, 503, 'the API answers 503 while its tables are missing, not 500')
  t.match(todos.json(), { code: 'SCHEMA_NOT_READY' })
  t.equal(todos.headers['retry-after'], '30')
  await runMigrations(db)
  t.equal((await app.inject('/health/ready')).statusCode, 200, 'green once migrated')
  t.equal((await app.inject('/todos')).statusCode, 200)
})

t.test('readiness is red while the database is down, and green again when it is back', async (t) => {
  const cluster = await PrivateCluster.create(t)
  await runMigrations(cluster.connectionString)
  const { app } = await buildTestApp(t, { connectionString: cluster.connectionString })
  t.equal((await app.inject('/health/ready')).statusCode, 200)

  await cluster.stop()
  const down = await app.inject('/health/ready')
  t.equal(down.statusCode, 503)
  t.match(down.json(), { code: 'NOT_READY', detail: /database check failed/, checks: { database: { status: 'failing', code: 'DATABASE_UNAVAILABLE' } } })

  const todos = await app.inject('/todos')
  t.equal(todos.statusCode, 503, 'requests needing the database get 503, not a crash')
  t.equal(todos.headers['retry-after'], '5')
  t.match(todos.json(), { code: 'DATABASE_UNAVAILABLE' })

  await cluster.start()
  // A connection that died with the old server may fail one more request; after that the
  // pool reconnects by itself.
  let ready = 0
  for (let attempt = 0; attempt < 50 && ready !== 200; attempt++) {
    ready = (await app.inject('/health/ready')).statusCode
    if (ready !== 200) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(ready, 200, 'recovers without a restart of the service')
  t.equal((await app.inject('/todos')).statusCode, 200)
})

t.test('readiness answers 503 promptly when the database hangs instead of hanging with it', async (t) => {
  const cluster = await PrivateCluster.create(t)
  await runMigrations(cluster.connectionString)
  const { app } = await buildTestApp(t, { connectionString: cluster.connectionString, env: { DATABASE_CONNECT_TIMEOUT_MS: '30000' } })
  t.equal((await app.inject('/health/ready')).statusCode, 200)
  await cluster.pause()
  t.teardown(() => cluster.resume())
  const [first, second] = await Promise.all([app.inject('/health/ready'), app.inject('/health/ready')])
  for (const response of [first, second]) {
    t.equal(response?.statusCode, 503)
    t.match(response?.json(), { checks: { database: { status: 'failing', code: 'DATABASE_UNAVAILABLE' } } })
  }
  t.match(await app.checkReadiness(), { checks: { database: { reason: /no answer within 500 ms/ } } }, 'the reason, for the log')
  await cluster.resume()
})
