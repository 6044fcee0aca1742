import t from 'tap'
import { migrationFiles } from '../src/db/migrate.js'
import { embeddedClusterDir, freePort, freshDatabase, runScript, sql } from './helper.js'

const names = async () => (await migrationFiles()).map((file) => file.name)

t.test('migrate up, status and down against DATABASE_URL', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const all = await names()

  const status = await runScript(t, 'cli/migrate.ts', ['status'], { DATABASE_URL: db })
  t.equal(status.code, 0)
  t.match(status.stderr, `pending: ${all.join(', ')}`)

  const up = await runScript(t, 'cli/migrate.ts', ['up'], { DATABASE_URL: db })
  t.equal(up.code, 0, up.stderr)
  for (const name of all) t.match(up.stderr, `applied ${name}`)
  t.equal((await sql(db, 'SELECT * FROM pgmigrations')).length, all.length)

  const again = await runScript(t, 'cli/migrate.ts', ['up'], { DATABASE_URL: db })
  t.match(again.stderr, 'nothing to apply: the schema is up to date')

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
