/** The server process starting: it migrates before it listens, refuses what it cannot migrate, and waits for its database. */
import { appendFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { migrationFiles, runMigrations } from '../../src/db/migrate.js'
import { freePort, freshDatabase, sql, startServer, tempDir, type ServerProcess } from '../helper.js'

const listening = /Server listening at/
const allMigrations = async () => (await migrationFiles()).map((file) => file.name)
t.test('migrates before it listens, then serves', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const server = await startServer(t, { DATABASE_URL: db })
  await server.waitFor(listening)
  const appliedAt = server.output.findIndex((line) => /applied \d+ migration/.test(line))
  const listenedAt = server.output.findIndex((line) => listening.test(line))
  t.ok(appliedAt >= 0 && appliedAt < listenedAt, 'migrations were applied before listening')
  t.same((await sql<{ name: string }>(db, 'SELECT name FROM pgmigrations ORDER BY id')).map((row) => row.name), await allMigrations())
  const ready = await fetch(`${server.url}/health/ready`)
  t.equal(ready.status, 200)
  server.child.kill('SIGTERM')
  t.same(await server.exited, { code: 0, signal: null })
})

t.test('MIGRATE_ON_START=false leaves the schema alone and readiness red', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const server = await startServer(t, { DATABASE_URL: db, MIGRATE_ON_START: 'false', SEED_ON_START: 'if-empty' })
  await server.waitFor(listening)
  t.match(server.output.join('\n'), /SEED_ON_START: not seeding, migrations are pending/, 'no seeding into missing tables')
  const ready = await fetch(`${server.url}/health/ready`)
  t.equal(ready.status, 503)
  t.match(await ready.json(), { checks: { migrations: { status: 'failing' } } })
})

t.test('a failing migration stops the start: exit 1, never listening, nothing of the run applied', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  await runMigrations(db, { count: 3 })
  // Something in the way of a table 0004 creates, after it created others.
  await sql(db, 'CREATE TABLE api_tokens (legacy int)')
  const server = await startServer(t, { DATABASE_URL: db })
  const { code } = await server.exited
  t.equal(code, 1)
  t.notOk(server.output.some((line) => listening.test(line)), 'never listened')
  t.match(server.output.join('\n'), /startup failed: migration 0004_users_and_tokens failed, nothing was applied: relation \\?"api_tokens\\?" already exists/)
  t.same(await sql(db, `SELECT relname FROM pg_class WHERE relname = 'users'`), [], 'the table created earlier in the failed migration is gone')
  t.equal((await sql(db, 'SELECT name FROM pgmigrations')).length, 3)
})

t.test('a database with tables but no migration history: start-up refuses and says what to do', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  await sql(db, 'CREATE TABLE todos (legacy int)')
  const server = await startServer(t, { DATABASE_URL: db })
  t.equal((await server.exited).code, 1)
  t.match(server.output.join('\n'), /startup failed: the database has tables \(todos\) but no migration history.*make migrate baseline=/)
  t.same(await sql(db, `SELECT relname FROM pg_class WHERE relname = 'pgmigrations'`), [], 'nothing was recorded')
})

t.test('two instances starting together both come up and apply each migration once', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const [a, b] = await Promise.all([startServer(t, { DATABASE_URL: db }), startServer(t, { DATABASE_URL: db })])
  await Promise.all([a?.waitFor(listening), b?.waitFor(listening)])
  for (const server of [a, b] as ServerProcess[]) t.equal((await fetch(`${server.url}/health/ready`)).status, 200)
  t.same((await sql<{ name: string }>(db, 'SELECT name FROM pgmigrations ORDER BY id')).map((row) => row.name), await allMigrations())
})

t.test('a database that never comes up: retries are logged, then exit 1 with a clear message', async (t) => {
  const port = await freePort()
  const server = await startServer(t, { DATABASE_URL: `postgres://app:pa55word@127.0.0.1:${port}/app`, DATABASE_WAIT_SECONDS: '2' })
  const { code } = await server.exited
  const output = server.output.join('\n')
  t.equal(code, 1)
  t.match(output, /database not ready yet/)
  t.match(output, new RegExp(`startup failed: database app@127.0.0.1:${port}/app did not become ready within 2 s`))
  t.notMatch(output, 'pa55word')
})

t.test('a database host that does not resolve yet (a stopped compose service) is waited for, then used', async (t) => {
  // The server gets a private /etc/hosts (a mount namespace of its own) that the test
  // can change: the name resolves only once the test adds it, like a db container starting.
  const db = new URL(await freshDatabase(t, { migrated: false }))
  const hosts = join(await tempDir(t), 'hosts')
  await writeFile(hosts, '127.0.0.1 localhost\n')
  db.hostname = 'db.todos-api.test'
  const server = await startServer(t, { DATABASE_URL: db.toString(), DATABASE_WAIT_SECONDS: '60' }, {
    // A user namespace of its own too, so this needs no root.
    wrap: ['unshare', '--map-root-user', '--mount', '/bin/sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hosts]
  })
  await server.waitFor(/database not ready yet/)
  t.match(server.output.join('\n'), /(ENOTFOUND|EAI_AGAIN) db\.todos-api\.test/, 'the unresolvable name is retried, not fatal')
  t.equal(server.child.exitCode, null, 'still waiting')
  await appendFile(hosts, '127.0.0.1 db.todos-api.test\n')
  await server.waitFor(listening)
  t.equal((await fetch(`${server.url}/health/ready`)).status, 200)
})
