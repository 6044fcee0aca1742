import t from 'tap'
import { startEmbeddedPostgres } from '../src/db/embedded.js'
import { waitForDatabase } from '../src/db/wait.js'
import { embeddedClusterDir, freePort } from './helper.js'

const reachable = (url: string) =>
  waitForDatabase(url, { deadlineMs: 0 }).then(
    () => true,
    () => false
  )

t.test('processes share the embedded server, and the last one to let go stops it', async (t) => {
  const options = { dataDir: await embeddedClusterDir(t), port: await freePort(), user: 'dev', password: 'dev', database: 'dev', ephemeral: true }
  const messages: string[] = []
  const first = await startEmbeddedPostgres({ ...options, log: (message) => messages.push(`first: ${message}`) })
  t.teardown(() => first.release())
  const second = await startEmbeddedPostgres({ ...options, log: (message) => messages.push(`second: ${message}`) })
  t.teardown(() => second.release())
  t.equal(first.startedHere, true)
  t.equal(second.startedHere, false, 'the second found it running')
  t.equal(second.connectionString, first.connectionString)

  await first.release()
  t.ok(await reachable(second.connectionString), 'the one that started it left it running for the other')
  t.match(messages.join('\n'), 'first: leaving embedded PostgreSQL running: 1 other process(es) still use it')
  await second.release()
  t.notOk(await reachable(second.connectionString), 'the last one stopped it')
  t.match(messages.join('\n'), 'second: stopping embedded PostgreSQL')

  const again = await startEmbeddedPostgres(options)
  t.equal(again.startedHere, true, 'and it starts again from the same data')
  await again.release()
})
