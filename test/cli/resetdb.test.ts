import t, { type Test } from 'tap'
import { migrationFiles } from '../../src/db/migrate.js'
import { SEED_CATS } from '../../src/resources/cats/demo.js'
import { SEED_TODOS } from '../../src/resources/todos/demo.js'
import { demoLists } from '../../src/resources/lists/demo.js'
import { freshDatabase, insertTodos, runScript, sql } from '../helper.js'

const counts = async (db: string) =>
  (await sql<{ todos: number; cats: number }>(db, 'SELECT (SELECT count(*) FROM todos)::int AS todos, (SELECT count(*) FROM cats)::int AS cats'))[0]

async function withData(t: Test) {
  const db = await freshDatabase(t)
  await insertTodos(db, 5, { title: "'todo ' || i" })
  await sql(db, `INSERT INTO cats (name, price, owner_id) VALUES ('Tom', 100, (SELECT id FROM users WHERE builtin))`)
  return db
}

t.test('resetdb drops everything, migrates back to the latest schema and says what it did', async (t) => {
  const db = await withData(t)
  const all = (await migrationFiles()).map((file) => file.name)
  const result = await runScript(t, 'cli/resetdb.ts', [], { DATABASE_URL: db })
  t.equal(result.code, 0, result.stderr)
  t.match(result.stderr, `reverted ${all.length} migration(s): ${[...all].reverse().join(', ')}`)
  t.match(result.stderr, `applied ${all.length} migration(s): ${all.join(', ')}`)
  t.match(result.stderr, 'the tables hold no rows')
  t.same(await counts(db), { todos: 0, cats: 0 })
  t.same((await sql<{ name: string }>(db, 'SELECT name FROM pgmigrations ORDER BY id')).map((row) => row.name), all)
  const [identity] = await sql<{ id: number }>(db, `INSERT INTO todos (title, owner_id) VALUES ('first again', (SELECT id FROM users WHERE builtin)) RETURNING id`)
  t.equal(identity?.id, 1, 'the tables really were recreated (ids start over)')
})

t.test('resetdb seed=1 seeds afterwards', async (t) => {
  const db = await withData(t)
  const result = await runScript(t, 'cli/resetdb.ts', ['--seed'], { DATABASE_URL: db })
  t.equal(result.code, 0, result.stderr)
  t.match(result.stderr, `seeded ${SEED_CATS} cats, ${demoLists().length} lists and ${SEED_TODOS} todos`)
  t.same(await counts(db), { todos: SEED_TODOS, cats: SEED_CATS })
})

t.test('resetdb refuses a production database unless forced', async (t) => {
  const db = await withData(t)
  const refused = await runScript(t, 'cli/resetdb.ts', [], { DATABASE_URL: db, NODE_ENV: 'production' })
  t.equal(refused.code, 1)
  t.match(refused.stderr, /refusing to reset a database with NODE_ENV=production.*make resetdb FORCE=1/)
  t.notMatch(refused.stderr, 'reverted')
  t.same(await counts(db), { todos: 5, cats: 1 }, 'nothing was touched')

  const forced = await runScript(t, 'cli/resetdb.ts', ['--force'], { DATABASE_URL: db, NODE_ENV: 'production' })
  t.equal(forced.code, 0, forced.stderr)
  t.same(await counts(db), { todos: 0, cats: 0 })
})

t.test('resetdb rejects arguments it does not know', async (t) => {
  const result = await runScript(t, 'cli/resetdb.ts', ['--everything'], {})
  t.equal(result.code, 2)
  t.match(result.stderr, 'usage: resetdb [--seed] [--force]')
})
