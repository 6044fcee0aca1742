import { copyFile, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import { MIGRATIONS_DIR, MigrationError, createMigration, migrationFiles, pendingMigrations, runMigrations } from '../../src/db/migrate.js'
import { splitStatements } from '../../src/db/statements.js'
import { freshDatabase, insertTodos, sql, tempDir, withClient } from '../helper.js'

const tables = async (db: string) =>
  (await sql<{ name: string }>(db, `SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).map((row) => row.name)
const applied = async (db: string) => (await sql<{ name: string }>(db, 'SELECT name FROM pgmigrations ORDER BY id')).map((row) => row.name)

/** A migrations directory holding copies of the real migrations plus `extra` files. */
async function migrationsWith(t: Test, extra: Record<string, string> = {}) {
  const dir = await tempDir(t)
  for (const file of await readdir(MIGRATIONS_DIR)) await copyFile(join(MIGRATIONS_DIR, file), join(dir, file))
  for (const [name, text] of Object.entries(extra)) await writeFile(join(dir, name), text)
  return dir
}

t.test('applies every migration to an empty database, then has nothing left to do', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const all = (await migrationFiles()).map((file) => file.name)
  t.same(await runMigrations(db), all)
  t.same(await applied(db), all)
  t.ok((await tables(db)).includes('todos'))
  t.same(await runMigrations(db), [], 'second run applies nothing')
  t.same(await withClient(db, (client) => pendingMigrations(client)), [])
})

t.test('a failing migration leaves the schema exactly as it was', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  // The transactional migrations up to the first no-transaction file run in one transaction
  // with the broken one after them, so none of them stays.
  const files = await migrationFiles()
  const firstAlone = files.findIndex((file) => !file.transaction)
  const dir = await migrationsWith(t, { '0900_broken.sql': '-- Up Migration\nCREATE TABLE half_done (id int);\nSELEC 1;\n-- Down Migration\nDROP TABLE half_done;\n' })
  for (const file of firstAlone < 0 ? [] : files.slice(firstAlone)) await rm(join(dir, `${file.name}.sql`))
  const error = await runMigrations(db, { dir }).catch((e: unknown) => e)
  t.type(error, MigrationError)
  t.match((error as Error).message, /^migration 0900_broken failed, nothing was applied: syntax error/)
  t.same(await tables(db), ['pgmigrations', 'pgmigrations_checksums'], 'no table from any migration of the failed run')
  t.same(await applied(db), [], 'nothing recorded as applied')

  // With the real migrations applied first, the broken one still changes nothing.
  await runMigrations(db)
  const before = await tables(db)
  await t.rejects(runMigrations(db, { dir }), MigrationError)
  t.same(await tables(db), before)
  t.notOk((await applied(db)).includes('0900_broken'))
})

t.test('concurrent migrators wait for each other and apply each migration once', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const results = await Promise.all([runMigrations(db), runMigrations(db), runMigrations(db), runMigrations(db)])
  const all = (await migrationFiles()).map((file) => file.name)
  t.same(results.flat().sort(), all, 'between them, every migration ran exactly once')
  t.same(await applied(db), all)
})

t.test('down reverts the last migration and up applies it again', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const all = await runMigrations(db)
  const last = all[all.length - 1]
  t.same(await runMigrations(db, { direction: 'down' }), [last])
  t.same(await applied(db), all.slice(0, -1))
  t.same(await withClient(db, (client) => pendingMigrations(client)), [last])
  t.same(await runMigrations(db, { direction: 'down', count: Number.POSITIVE_INFINITY }), all.slice(0, -1).reverse())
  t.same(await tables(db), ['pgmigrations', 'pgmigrations_checksums'], 'every down part undoes its up part')
  t.same(await runMigrations(db), all)
})

t.test('editing a migration after it ran is refused', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const dir = await migrationsWith(t)
  await runMigrations(db, { dir })
  const first = join(dir, '0001_create_todos.sql')
  await writeFile(first, (await readFile(first, 'utf8')).replace('CREATE TABLE todos (', 'CREATE TABLE todos (\n  extra int,'))
  const error = await runMigrations(db, { dir }).catch((e: unknown) => e)
  t.type(error, MigrationError)
  t.match((error as Error).message, /0001_create_todos changed since they ran \(checksum mismatch\)/)
})

t.test('a new migration gets the next number and both parts', async (t) => {
  const dir = await migrationsWith(t)
  const before = await readdir(dir)
  const created = await createMigration('add_todo_tags', dir)
  const next = String(before.length + 1).padStart(4, '0')
  t.equal(created, join(dir, `${next}_add_todo_tags.sql`))
  t.match(await readFile(created, 'utf8'), /-- Up Migration[\s\S]*-- Down Migration/)
  await t.rejects(createMigration('Add Tags!', dir), MigrationError)
})

t.test('upgrade to users: a database with rows from before migrates forward and every row belongs to the local user', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  await runMigrations(db, { count: 3 })
  t.notOk((await tables(db)).includes('users'), 'the schema of the release before users')
  await sql(db, `INSERT INTO todos (title, "order") SELECT 'old ' || i, i FROM generate_series(1, 50) i`)
  await sql(db, `INSERT INTO cats (name, price) VALUES ('Old Tom', 100)`)
  const before = await sql(db, 'SELECT id, title, version, updated_at FROM todos ORDER BY id')
  t.same(await runMigrations(db, { count: 1 }), ['0004_users_and_tokens'])
  const [local] = await sql<{ id: number }>(db, 'SELECT id FROM users WHERE builtin')
  t.ok(local, 'the built-in local user exists')
  t.same(await sql(db, 'SELECT owner_id, count(*)::int AS n FROM todos GROUP BY owner_id'), [{ owner_id: local?.id, n: 50 }], 'every todo is the local user’s')
  t.same(await sql(db, 'SELECT owner_id, name FROM cats'), [{ owner_id: local?.id, name: 'Old Tom' }], 'and the cat')
  t.same(await sql(db, 'SELECT id, title, version, updated_at FROM todos ORDER BY id'), before, 'nothing else about them changed')
  t.same(await sql(db, `SELECT column_default FROM information_schema.columns WHERE table_name = 'todos' AND column_name = 'owner_id'`), [{ column_default: null }], 'no default owner is left for new rows')
  await t.rejects(sql(db, `INSERT INTO todos (title) VALUES ('ownerless')`), /owner_id/, 'a row without an owner is refused')

  // And back: the rows stay, the users go.
  await runMigrations(db, { direction: 'down' })
  t.same((await sql<{ n: number }>(db, 'SELECT count(*)::int AS n FROM todos'))[0]?.n, 50)
  t.notOk((await tables(db)).includes('users'))
})

t.test('a migration with no SQL yet (just made by make migration) is not applied, nor anything after it', async (t) => {
  const db = await freshDatabase(t)
  const dir = await migrationsWith(t)
  const created = await createMigration('not_written_yet', dir)
  const name = basename(created, '.sql')
  t.match(name, /^\d{4}_not_written_yet$/, 'the next number')
  const warnings: string[] = []
  t.same(await runMigrations(db, { dir, logger: { info: () => {}, warn: (m) => warnings.push(m) } }), [], 'nothing applied')
  t.match(warnings.join('\n'), new RegExp(`${name} has no SQL under "-- Up Migration" yet`))
  await writeFile(join(dir, '9007_later.sql'), '-- Up Migration\nCREATE TABLE later (id int);\n-- Down Migration\nDROP TABLE later;\n')
  t.same(await runMigrations(db, { dir }), [], 'a later file waits behind it')
  await writeFile(created, '-- Up Migration\nCREATE TABLE written (id int);\n-- Down Migration\nDROP TABLE written;\n')
  t.same(await runMigrations(db, { dir }), [name, '9007_later'], 'applied once it has SQL, with what follows')
})

t.test('an applied migration whose file is gone: up goes on (a newer release ran it), down is refused with the way out', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const dir = await migrationsWith(t, { '9006_newer.sql': '-- Up Migration\nCREATE TABLE newer (id int);\n-- Down Migration\nDROP TABLE newer;\n' })
  await runMigrations(db, { dir })
  await rm(join(dir, '9006_newer.sql'))
  t.same(await runMigrations(db, { dir }), [], 'the older release starts: nothing to apply')
  const error = await runMigrations(db, { dir, direction: 'down' }).catch((e: unknown) => e)
  t.type(error, MigrationError)
  t.match((error as Error).message, /9006_newer are recorded as applied but have no file in migrations\/.*make migrate-forget name=9006_newer/)
  t.same(await applied(db), [...(await migrationFiles()).map((file) => file.name), '9006_newer'], 'nothing was reverted')
})

t.test('a migration that cannot get its table lock gives up within lock_timeout, lets other queries through, retries, and reports', async (t) => {
  const db = await freshDatabase(t)
  const dir = await migrationsWith(t, { '9006_add_column.sql': '-- Up Migration\nALTER TABLE todos ADD COLUMN extra int;\n-- Down Migration\nALTER TABLE todos DROP COLUMN extra;\n' })
  const reader = new pg.Client({ connectionString: db })
  await reader.connect()
  t.teardown(() => reader.end())
  await reader.query('BEGIN')
  await reader.query('SELECT count(*) FROM todos') // a long transaction that read the table
  const warnings: string[] = []
  const started = Date.now()
  const attempt = runMigrations(db, { dir, limits: { lockTimeoutMs: 300, lockRetries: 2 }, retryDelayMs: 100, logger: { info: () => {}, warn: (m) => warnings.push(m) } })
  // While the migration waits in the lock queue, a query on the table must not wait long.
  await new Promise((resolve) => setTimeout(resolve, 100))
  const other = Date.now()
  await sql(db, 'SELECT count(*) FROM todos')
  t.ok(Date.now() - other < 2000, `other queries are not stuck behind the migration for long (${Date.now() - other} ms)`)
  const error = await attempt.catch((e: unknown) => e)
  t.type(error, MigrationError)
  t.match((error as Error).message, /9006_add_column failed, nothing was applied: .*lock timeout.*through 3 attempts/)
  t.equal(warnings.filter((line) => /busy .*retrying in/.test(line)).length, 2, 'two retries, with pauses')
  t.ok(Date.now() - started < 5000)
  await reader.query('COMMIT')
  t.same(await runMigrations(db, { dir, limits: { lockTimeoutMs: 300 } }), ['9006_add_column'], 'once the table is free, it applies')
})

t.test("waiting for another instance's migration run is bounded, and the error names who holds the lock", async (t) => {
  const db = await freshDatabase(t)
  const holder = new pg.Client({ connectionString: db, application_name: 'stuck-migrator' })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('SELECT pg_advisory_lock(7241865325823964)')
  const error = await runMigrations(db, { limits: { lockWaitMs: 400 } }).catch((e: unknown) => e)
  t.type(error, MigrationError)
  t.match((error as Error).message, /still holds the migration lock after 0 s: pid \d+ \(stuck-migrator/)
  t.match((error as Error).message, /pg_terminate_backend\(\d+\)/)
})

t.test('a statement that runs past MIGRATION_STATEMENT_TIMEOUT_MS is stopped, and nothing is applied', async (t) => {
  const db = await freshDatabase(t)
  const dir = await migrationsWith(t, { '9006_slow.sql': '-- Up Migration\nCREATE TABLE slow (id int);\nSELECT pg_sleep(5);\n-- Down Migration\nDROP TABLE slow;\n' })
  const started = Date.now()
  const error = await runMigrations(db, { dir, limits: { statementTimeoutMs: 500 } }).catch((e: unknown) => e)
  t.match((error as Error).message, /9006_slow failed, nothing was applied: .*statement timeout/)
  t.ok(Date.now() - started < 4000)
  t.notOk((await tables(db)).includes('slow'))
})

t.test('a database with tables but no migration history is refused, unless a baseline says which migration it matches', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  await runMigrations(db, { count: 3 })
  await sql(db, 'DROP TABLE pgmigrations, pgmigrations_checksums') // as if made by hand, or by another tool
  const error = await runMigrations(db).catch((e: unknown) => e)
  t.type(error, MigrationError)
  t.match((error as Error).message, /has tables \(cats, todos\) but no migration history.*make migrate baseline=/)
  const all = (await migrationFiles()).map((file) => file.name)
  t.same(await runMigrations(db, { baseline: '0003' }), all.slice(3), 'the ones after the baseline run')
  t.same(await applied(db), all)
  t.rejects(runMigrations(db, { baseline: '0003' }), /already has a migration history/)
})

const CONCURRENT_INDEX = `-- todos-api: no-transaction
-- Up Migration
CREATE INDEX CONCURRENTLY IF NOT EXISTS todos_lower_title_idx ON todos (lower(title));
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS todos_unique_title_idx ON todos (title);
-- Down Migration
DROP INDEX CONCURRENTLY IF EXISTS todos_unique_title_idx;
DROP INDEX CONCURRENTLY IF EXISTS todos_lower_title_idx;
`

t.test('a no-transaction migration: CREATE INDEX CONCURRENTLY runs alone, recorded once it succeeded, reverted alone', async (t) => {
  const db = await freshDatabase(t)
  const dir = await migrationsWith(t, {
    '9006_before.sql': '-- Up Migration\nCREATE TABLE before_it (id int);\n-- Down Migration\nDROP TABLE before_it;\n',
    '9007_title_indexes.sql': CONCURRENT_INDEX,
    '9008_after.sql': '-- Up Migration\nCREATE TABLE after_it (id int);\n-- Down Migration\nDROP TABLE after_it;\n'
  })
  t.same(await runMigrations(db, { dir }), ['9006_before', '9007_title_indexes', '9008_after'])
  const indexes = await sql<{ name: string; valid: boolean }>(
    db,
    `SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 'todos_%title_idx' AND c.relname <> 'todos_owner_title_idx' ORDER BY 1`
  )
  t.same(indexes, [{ name: 'todos_lower_title_idx', valid: true }, { name: 'todos_unique_title_idx', valid: true }])
  t.same(await runMigrations(db, { dir, direction: 'down', count: 2 }), ['9008_after', '9007_title_indexes'])
  t.same(await sql(db, `SELECT relname FROM pg_class WHERE relname IN ('todos_lower_title_idx', 'todos_unique_title_idx')`), [], 'the down part ran too')
  t.same(await runMigrations(db, { dir }), ['9007_title_indexes', '9008_after'], 'and up again')
})

t.test('a failed concurrent build: not recorded, the INVALID index named with the fix, the transactional one before it kept', async (t) => {
  const db = await freshDatabase(t)
  await insertTodos(db, 2, { title: "'same title'" }) // the unique index cannot be built
  const dir = await migrationsWith(t, {
    '9006_before.sql': '-- Up Migration\nCREATE TABLE before_it (id int);\n-- Down Migration\nDROP TABLE before_it;\n',
    '9007_title_indexes.sql': CONCURRENT_INDEX
  })
  const error = await runMigrations(db, { dir }).catch((e: unknown) => e)
  t.type(error, MigrationError)
  const message = (error as Error).message
  t.match(message, /9007_title_indexes \(up, outside a transaction\) failed at statement 2 of 2, and is not recorded as applied/)
  t.match(message, /left index\(es\) todos_unique_title_idx INVALID .*DROP INDEX CONCURRENTLY todos_unique_title_idx/)
  t.match(message, /9006_before, before it, stay applied/)
  t.same(await applied(db), [...(await migrationFiles()).map((file) => file.name), '9006_before'])
  // Run again as it is, the failed build's INVALID index would satisfy IF NOT EXISTS: refused, not recorded.
  await sql(db, "UPDATE todos SET title = title || ' ' || id")
  const again = await runMigrations(db, { dir }).catch((e: unknown) => e)
  t.match((again as Error).message, /9007_title_indexes .*not recorded as applied.*todos_unique_title_idx are INVALID.*DROP INDEX CONCURRENTLY todos_unique_title_idx/)
  t.notOk((await applied(db)).includes('9007_title_indexes'))
  // The way out: drop the invalid index, fix the data, migrate again (the first statement is IF NOT EXISTS).
  await sql(db, 'DROP INDEX CONCURRENTLY todos_unique_title_idx')
  t.same(await runMigrations(db, { dir }), ['9007_title_indexes'])
})

t.test('splitting a no-transaction file into statements: quotes, identifiers, dollar bodies and comments do not split', async (t) => {
  const sqlText = `-- a comment; not a statement
CREATE INDEX CONCURRENTLY a_idx ON t ((';'));
/* block; comment */ ALTER TYPE mood ADD VALUE 'it''s; fine';
CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;
COMMENT ON TABLE "we;ird" IS $$x;y$$;
-- trailing comment`
  t.same(splitStatements(sqlText), [
    "-- a comment; not a statement\nCREATE INDEX CONCURRENTLY a_idx ON t ((';'))",
    "/* block; comment */ ALTER TYPE mood ADD VALUE 'it''s; fine'",
    'CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$',
    'COMMENT ON TABLE "we;ird" IS $$x;y$$'
  ])
})
