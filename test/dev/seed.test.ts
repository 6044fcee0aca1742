import t from 'tap'
import { SEED_CATS } from '../../src/resources/cats/demo.js'
import { demoLists } from '../../src/resources/lists/demo.js'
import { SEED_TODOS } from '../../src/resources/todos/demo.js'

const SEED_LISTS = demoLists().length
import { seedDatabase } from '../../src/dev/seed.js'
import { buildTestApp, freshDatabase, runScript, sql, startServer } from '../helper.js'

const counts = async (db: string) =>
  (await sql<{ todos: number; cats: number }>(db, 'SELECT (SELECT count(*) FROM todos)::int AS todos, (SELECT count(*) FROM cats)::int AS cats'))[0]

t.test('seeding fills a realistic, varied set of todos and cats', async (t) => {
  const db = await freshDatabase(t)
  const result = await seedDatabase(db)
  t.same(result, { cats: { added: SEED_CATS, total: SEED_CATS }, lists: { added: SEED_LISTS, total: SEED_LISTS }, todos: { added: SEED_TODOS, total: SEED_TODOS } })
  t.ok(SEED_TODOS >= 200 && SEED_CATS >= 100, 'a few hundred rows')
  const [todos] = await sql<Record<string, number>>(
    db,
    `SELECT count(DISTINCT title)::int AS titles, count(*) FILTER (WHERE completed)::int AS done, count(*) FILTER (WHERE NOT completed)::int AS open,
            count(*) FILTER (WHERE due_date IS NULL)::int AS undated, count(*) FILTER (WHERE due_date < now())::int AS overdue,
            count(*) FILTER (WHERE due_date > now())::int AS upcoming, count(*) FILTER (WHERE "order" IS NULL)::int AS unordered,
            count(*) FILTER (WHERE description IS NOT NULL)::int AS described, count(*) FILTER (WHERE cardinality(labels) > 0)::int AS labelled,
            count(*) FILTER (WHERE cardinality(labels) = 0)::int AS unlabelled, count(DISTINCT priority)::int AS priorities,
            count(*) FILTER (WHERE completed_at IS NOT NULL)::int AS completed_at
     FROM todos`
  )
  t.equal(todos?.titles, SEED_TODOS, 'titles are unique')
  t.equal(todos?.priorities, 4, 'every priority')
  t.equal(todos?.completed_at, todos?.done, 'the completed have a completion time')
  t.same(await sql(db, 'SELECT title, archived FROM lists ORDER BY id'), demoLists().map(({ title, archived }) => ({ title, archived })))
  for (const [name, value] of Object.entries(todos ?? {})) t.ok(value > 0, `todos: some ${name} (${value})`)
  const [cats] = await sql<Record<string, number>>(
    db,
    `SELECT count(DISTINCT name)::int AS names, count(DISTINCT breed)::int AS breeds, count(*) FILTER (WHERE breed IS NULL)::int AS unknown_breed,
            min(price)::int AS cheapest, max(price)::int AS dearest FROM cats`
  )
  t.equal(cats?.names, SEED_CATS, 'names are unique')
  t.ok((cats?.breeds ?? 0) >= 8, `${cats?.breeds} breeds`)
  t.ok((cats?.unknown_breed ?? 0) > 0, 'some without a breed')
  t.equal(cats?.cheapest, 0, 'some free to a good home')
  t.ok((cats?.dearest ?? 0) > 100_000, 'and some pedigrees')
})

t.test('seeding twice adds nothing, and rows people made are left alone', async (t) => {
  const db = await freshDatabase(t)
  await sql(db, `INSERT INTO todos (title, owner_id) VALUES ('my own todo', (SELECT id FROM users WHERE builtin))`)
  await sql(db, `INSERT INTO cats (name, price, owner_id) VALUES ('my own cat', 1, (SELECT id FROM users WHERE builtin))`)
  await seedDatabase(db)
  const again = await seedDatabase(db)
  t.same(again, { cats: { added: 0, total: SEED_CATS + 1 }, lists: { added: 0, total: SEED_LISTS }, todos: { added: 0, total: SEED_TODOS + 1 } })
  t.same(await sql(db, `SELECT title, version FROM todos WHERE title = 'my own todo'`), [{ title: 'my own todo', version: 1 }])

  await sql(db, `DELETE FROM todos WHERE id IN (SELECT id FROM todos WHERE title <> 'my own todo' LIMIT 3)`)
  t.equal((await seedDatabase(db)).todos?.added, 3, 'seed rows that were deleted come back')
})

t.test('concurrent seeders do not duplicate rows', async (t) => {
  const db = await freshDatabase(t)
  const results = await Promise.all([seedDatabase(db), seedDatabase(db), seedDatabase(db)])
  t.equal(results.reduce((sum, result) => sum + (result.todos?.added ?? 0), 0), SEED_TODOS)
  t.same(await counts(db), { todos: SEED_TODOS, cats: SEED_CATS })
})

t.test('the API serves the demo data', async (t) => {
  const db = await freshDatabase(t)
  await seedDatabase(db)
  const { app } = await buildTestApp(t, { connectionString: db })
  const todos = await app.inject('/todos?limit=1000')
  t.equal(todos.statusCode, 200)
  t.equal(todos.json().length, SEED_TODOS)
  const cats = await app.inject('/cats?limit=1000&sort=-price')
  t.equal(cats.json().length, SEED_CATS)
})

t.test('make seed prints what it added', async (t) => {
  const db = await freshDatabase(t)
  const first = await runScript(t, 'cli/seed.ts', [], { DATABASE_URL: db })
  t.equal(first.code, 0, first.stderr)
  t.match(first.stderr, `added ${SEED_CATS} cats (${SEED_CATS} in all), ${SEED_LISTS} lists (${SEED_LISTS} in all) and ${SEED_TODOS} todos (${SEED_TODOS} in all)`)
  const second = await runScript(t, 'cli/seed.ts', [], { DATABASE_URL: db })
  t.match(second.stderr, `added 0 cats (${SEED_CATS} in all), 0 lists (${SEED_LISTS} in all) and 0 todos (${SEED_TODOS} in all)`)
})

t.test('SEED_ON_START: if-empty seeds only an empty database; true tops up; false (default) never', async (t) => {
  const empty = await freshDatabase(t)
  const first = await startServer(t, { DATABASE_URL: empty, SEED_ON_START: 'if-empty' })
  await first.waitFor(/Server listening/)
  t.match(first.output.join('\n'), `demo data: added ${SEED_CATS} cats, ${SEED_LISTS} lists and ${SEED_TODOS} todos`)
  t.same(await counts(empty), { todos: SEED_TODOS, cats: SEED_CATS })

  const used = await freshDatabase(t)
  await sql(used, `INSERT INTO todos (title, owner_id) VALUES ('real work', (SELECT id FROM users WHERE builtin))`)
  const second = await startServer(t, { DATABASE_URL: used, SEED_ON_START: 'if-empty' })
  await second.waitFor(/Server listening/)
  t.notMatch(second.output.join('\n'), 'demo data')
  t.same(await counts(used), { todos: 1, cats: 0 })

  const third = await startServer(t, { DATABASE_URL: used, SEED_ON_START: 'true' })
  await third.waitFor(/Server listening/)
  t.same(await counts(used), { todos: SEED_TODOS + 1, cats: SEED_CATS })

  const none = await freshDatabase(t)
  const fourth = await startServer(t, { DATABASE_URL: none })
  await fourth.waitFor(/Server listening/)
  t.same(await counts(none), { todos: 0, cats: 0 })
})
