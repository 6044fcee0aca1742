import t from 'tap'
import { DatabaseUnavailableError, waitForDatabase } from '../../src/db/wait.js'
import { freePort } from '../helper.js'
import { PrivateCluster } from '../support/private-cluster.js'

const fast = { initialDelayMs: 50, maxDelayMs: 200 }

t.test('waits for a database that is not up yet, then returns once it is', async (t) => {
  const cluster = await PrivateCluster.create(t)
  await cluster.stop()
  const retries: string[] = []
  let starting: Promise<void> | undefined
  const waiting = waitForDatabase(cluster.connectionString, {
    deadlineMs: 60_000,
    ...fast,
    onRetry: ({ reason }) => {
      retries.push(reason)
      if (retries.length === 3) starting ??= cluster.start()
    }
  })
  await t.resolves(waiting)
  await starting
  t.ok(retries.length >= 3, `retried (${retries.length} times) before the database came up`)
  t.match(retries[0], /ECONNREFUSED/)
})

t.test('a wrong password fails at once: retrying cannot fix it', async (t) => {
  const cluster = await PrivateCluster.create(t)
  const url = cluster.connectionString.replace('postgres:postgres@', 'postgres:not-the-password@')
  let retries = 0
  const error = await waitForDatabase(url, { deadlineMs: 60_000, ...fast, onRetry: () => retries++ }).catch((e: unknown) => e)
  t.type(error, DatabaseUnavailableError)
  t.equal((error as DatabaseUnavailableError).permanent, true)
  t.equal(retries, 0, 'no retry')
  t.match((error as Error).message, /authentication failed/)
  t.notMatch((error as Error).message, 'not-the-password')
})

t.test('a missing database fails at once', async (t) => {
  const cluster = await PrivateCluster.create(t)
  let retries = 0
  const error = await waitForDatabase(cluster.connectionString.replace(/\/app$/, '/nope'), { deadlineMs: 60_000, ...fast, onRetry: () => retries++ }).catch(
    (e: unknown) => e
  )
  t.equal((error as DatabaseUnavailableError).permanent, true)
  t.equal(retries, 0)
  t.match((error as Error).message, /the database does not exist/)
})

t.test('a host name that does not resolve is waited for (a stopped compose service), then named at the deadline', async (t) => {
  let retries = 0
  // Long enough for a few lookups even when the resolver is slow on a busy machine.
  const error = await waitForDatabase('postgres://u:secret@db.does-not-exist.invalid:5432/app', {
    deadlineMs: 3000,
    ...fast,
    onRetry: () => retries++
  }).catch((e: unknown) => e)
  t.equal((error as DatabaseUnavailableError).permanent, false)
  t.ok(retries >= 2, `retried ${retries} times`)
  t.match((error as Error).message, /did not become ready within 3 s \(last error: .*(ENOTFOUND|EAI_AGAIN) db\.does-not-exist\.invalid/)
  t.notMatch((error as Error).message, 'secret')
})

t.test('gives up at the deadline with a clear message that names the database but not the password', async (t) => {
  const port = await freePort()
  const error = await waitForDatabase(`postgres://app:secret@127.0.0.1:${port}/app`, { deadlineMs: 600, ...fast }).catch((e: unknown) => e)
  t.type(error, DatabaseUnavailableError)
  t.equal((error as DatabaseUnavailableError).permanent, false)
  t.match((error as Error).message, new RegExp(`database app@127.0.0.1:${port}/app did not become ready within 1 s \\(last error: .*ECONNREFUSED`))
  t.notMatch((error as Error).message, 'secret')
})

t.test('a single attempt (deadline 0) gets the whole connect timeout, not the 100 ms left of a deadline', async (t) => {
  const cluster = await PrivateCluster.create(t)
  await cluster.pause() // the server is there, but answers nothing until resumed
  const thaw = new Promise((resolve) => setTimeout(resolve, 400)).then(() => cluster.resume())
  await t.resolves(waitForDatabase(cluster.connectionString, { deadlineMs: 0, connectTimeoutMs: 5000 }))
  await thaw
})
