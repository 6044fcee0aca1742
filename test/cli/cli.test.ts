import t from 'tap'
import { migrationFiles } from '../../src/db/migrate.js'
import { embeddedClusterDir, freePort, freshDatabase, runScript, sql, startServer } from '../helper.js'

const names = async () => (await migrationFiles()).map((file) => file.name)

t.test('migrate up, status and down against DATABASE_URL', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const all = await names()

  const status = await runScript(t, 'cli/migrate.ts', ['status'], { DATABASE_URL: db })
  t.equal(status.code, 3, 'status: exit 3 while migrations are pending')
  for (const name of all) t.match(status.stdout, new RegExp(`^pending +${name}$`, 'm'))

  const dry = await runScript(t, 'cli/migrate.ts', ['up', '--dry-run'], { DATABASE_URL: db })
  t.equal(dry.code, 0, dry.stderr)
  t.match(dry.stdout, /^-- 0001_create_todos \(up\)\n-- Up Migration[\s\S]*CREATE TABLE todos/m, 'dry run: the SQL, in order, on stdout')
  t.ok(dry.stdout.indexOf(`-- ${all[1]} (up)`) > dry.stdout.indexOf('-- 0001_create_todos (up)'))
  t.match(dry.stderr, 'nothing was changed')
  t.same(await sql(db, "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'todos'"), [{ n: 0 }], 'and nothing was')

  const up = await runScript(t, 'cli/migrate.ts', ['up'], { DATABASE_URL: db })
  t.equal(up.code, 0, up.stderr)
  for (const name of all) t.match(up.stderr, `applied ${name}`)
  t.equal((await sql(db, 'SELECT * FROM pgmigrations')).length, all.length)

  const again = await runScript(t, 'cli/migrate.ts', ['up'], { DATABASE_URL: db })
  t.match(again.stderr, 'nothing to apply: the schema is up to date')
  const current = await runScript(t, 'cli/migrate.ts', ['status'], { DATABASE_URL: db })
  t.equal(current.code, 0, 'status: exit 0 when every migration is applied and unchanged')
  t.match(current.stdout, /^applied +0001_create_todos +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m, 'with when it ran')

  const down = await runScript(t, 'cli/migrate.ts', ['down'], { DATABASE_URL: db })
  t.equal(down.code, 0)
  t.match(down.stderr, `reverted ${all[all.length - 1]}`)
  t.equal((await sql(db, 'SELECT * FROM pgmigrations')).length, all.length - 1)
})

t.test('migrate against the embedded database when none is configured, and stop it afterwards', async (t) => {
  const env = { EMBEDDED_POSTGRES_DIR: await embeddedClusterDir(t), EMBEDDED_POSTGRES_PORT: String(await freePort()), POSTGRES_USER: 'dev', POSTGRES_PASSWORD: 'devpass', POSTGRES_DB: 'devdb' }
  const up = await runScript(t, 'cli/migrate.ts', ['up'], env)
  t.equal(up.code, 0, up.stderr)
  t.match(up.stderr, /initialising embedded PostgreSQL cluster/)
  t.match(up.stderr, /database dev@127\.0\.0\.1:\d+\/devdb \(embedded\)/)
  t.match(up.stderr, 'applied 0001_create_todos')
  t.notMatch(up.stderr, 'devpass')
  t.match(up.stderr, /stopping embedded PostgreSQL/, 'the server it started is stopped again')

  const status = await runScript(t, 'cli/migrate.ts', ['status'], env)
  t.match(status.stderr, 'up to date', 'the data persisted in EMBEDDED_POSTGRES_DIR')
})

t.test('drift: status exits 4 and names it; migrate, migrate-down and start-up refuse with the way out; accept and forget are the way out', async (t) => {
  const db = await freshDatabase(t)
  const all = await names()
  // A file edited after it ran (as the database sees it), and a migration whose file is gone.
  await sql(db, "UPDATE pgmigrations_checksums SET sha256 = 'edited' WHERE name = $1", [all[1]])
  await sql(db, "INSERT INTO pgmigrations (name, run_on) VALUES ('0001a_gone', now())")

  const status = await runScript(t, 'cli/migrate.ts', ['status'], { DATABASE_URL: db })
  t.equal(status.code, 4, 'status: exit 4 on drift')
  t.match(status.stdout, new RegExp(`^CHANGED +${all[1]} `, 'm'))
  t.match(status.stdout, /^MISSING +0001a_gone /m)
  for (const command of ['up', 'down']) {
    const refused = await runScript(t, 'cli/migrate.ts', [command], { DATABASE_URL: db })
    t.equal(refused.code, 1, `${command} refuses`)
    t.match(refused.stderr, `${all[1]} changed since they ran`, `${command}: names the changed file`)
    t.match(refused.stderr, `make migrate-accept name=${all[1]}`, `${command}: and the way out`)
    t.match(refused.stderr, '0001a_gone are recorded as applied but have no file', `${command}: names the missing one`)
    t.match(refused.stderr, 'make migrate-forget name=0001a_gone')
  }
  const server = await startServer(t, { DATABASE_URL: db })
  t.equal((await server.exited).code, 1, 'start-up refuses too')
  t.match(server.output.join('\n'), /startup failed: .*changed since they ran.*make migrate-accept/)
  const unmigrated = await startServer(t, { DATABASE_URL: db, MIGRATE_ON_START: 'false' })
  await unmigrated.waitFor(/Server listening/)
  const ready = await fetch(`${unmigrated.url}/health/ready`)
  t.equal(ready.status, 503, 'readiness is red on drift')
  t.match(await ready.json(), { checks: { migrations: { status: 'failing', code: 'MIGRATIONS_CHANGED' } } })
  t.match(await unmigrated.waitFor(/not ready/), new RegExp(`${all[1]} changed since they ran.*0001a_gone are recorded`), 'the log says which')
  unmigrated.child.kill('SIGTERM')
  await unmigrated.exited

  t.equal((await runScript(t, 'cli/migrate.ts', ['accept', all[1]?.slice(0, 4) ?? ''], { DATABASE_URL: db })).code, 0, 'accept, by number')
  t.equal((await runScript(t, 'cli/migrate.ts', ['forget', '0001a_gone'], { DATABASE_URL: db })).code, 0, 'forget')
  const wrong = await runScript(t, 'cli/migrate.ts', ['forget', '0001'], { DATABASE_URL: db })
  t.equal(wrong.code, 1, 'forgetting a migration whose file is there is refused')
  t.match(wrong.stderr, 'not missing')
  t.equal((await runScript(t, 'cli/migrate.ts', ['status'], { DATABASE_URL: db })).code, 0, 'current again')
  t.equal((await runScript(t, 'cli/migrate.ts', ['down'], { DATABASE_URL: db })).code, 0, 'and down works again')
})

t.test('bad usage and bad config exit non-zero', async (t) => {
  const usage = await runScript(t, 'cli/migrate.ts', ['sideways'], {})
  t.equal(usage.code, 2)
  t.match(usage.stderr, 'usage: migrate')
  const config = await runScript(t, 'cli/migrate.ts', ['up'], { DATABASE_URL: 'nope' })
  t.equal(config.code, 1)
  t.match(config.stderr, 'DATABASE_URL must be a URL')
  const name = await runScript(t, 'cli/migrate.ts', ['create', 'Bad Name'], {})
  t.equal(name.code, 1)
  t.match(name.stderr, 'a migration name is lower-case letters')
})

t.test('make user: creates a user without a password and prints a first token alone on stdout', async (t) => {
  const db = await freshDatabase(t)
  const made = await runScript(t, 'cli/users.ts', ['create', '--email', 'Ops@Example.com', '--name', 'Ops'], { DATABASE_URL: db })
  t.equal(made.code, 0, made.stderr)
  const token = made.stdout.trim()
  t.match(made.stdout, /^tapi_[\w-]{43}\n$/, 'only the token on stdout')
  t.match(made.stderr, /created user \d+ \(Ops@Example\.com\)/)
  t.same(
    await sql(db, `SELECT u.email, u.password_hash, k.name FROM users u JOIN api_tokens k ON k.user_id = u.id WHERE k.token_hash = sha256($1::bytea)`, [token]),
    [{ email: 'Ops@Example.com', password_hash: null, name: 'first token (make user)' }],
    'the token is stored as its hash, for a user with no password yet'
  )
  const again = await runScript(t, 'cli/users.ts', ['create', '--email', 'ops@example.com', '--name', 'Ops again'], { DATABASE_URL: db })
  t.equal(again.code, 1)
  t.match(again.stderr, 'a user with the email ops@example.com already exists')
  t.equal(again.stdout, '', 'no token printed')
  t.same(await sql(db, `SELECT count(*)::int AS n FROM api_tokens`), [{ n: 1 }], 'and none made')
  const empty = await freshDatabase(t, { migrated: false })
  const early = await runScript(t, 'cli/users.ts', ['create', '--email', 'x@example.com', '--name', 'X'], { DATABASE_URL: empty })
  t.equal(early.code, 1)
  t.match(early.stderr, /migrations pending \(0001_create_todos.*\): run `make migrate` first/, 'an unmigrated database gets a way forward, not a missing relation')
  const usage = await runScript(t, 'cli/users.ts', ['create', '--email', 'x@example.com'], { DATABASE_URL: db })
  t.equal(usage.code, 2)
  t.match(usage.stderr, 'usage: users create')
})
