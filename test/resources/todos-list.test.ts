import t from 'tap'
import { buildTestApp, expectProblem, insertTodos, sql } from '../helper.js'
import { nextLink, walk } from '../support/http.js'

interface Todo {
  id: number
  title: string
  description: string | null
  completed: boolean
  order: number | null
  due_date: string | null
  created_at: string
}

t.test('filters: completed, due_before, due_after, q, and their combinations', async (t) => {
  const { api } = await buildTestApp(t)
  const make = (title: string, extra: Record<string, unknown> = {}) => api.create('/todos', { title, ...extra })
  const milk = await make('Buy milk', { due_date: '2026-03-01T10:00:00Z' })
  const cafe = await make('Visit the CAFÉ', { description: 'with Zoë', completed: true, due_date: '2026-03-05T10:00:00Z' })
  const tax = await make('File taxes', { description: 'before the deadline: 100% done_soon', due_date: '2026-04-15T00:00:00Z' })
  const someday = await make('Someday, maybe', { completed: true })
  const ids = async (query: string) => ((await api.get(`/todos?${query}`)).json() as Todo[]).map((todo) => todo.id).sort((a, b) => a - b)

  t.same(await ids(''), [milk.id, cafe.id, tax.id, someday.id])
  t.same(await ids('completed=true'), [cafe.id, someday.id])
  t.same(await ids('completed=false'), [milk.id, tax.id])
  t.same(await ids('due_before=2026-03-05T10:00:00Z'), [milk.id], 'due_before is exclusive and skips todos without a due date')
  t.same(await ids('due_after=2026-03-01T10:00:00Z'), [cafe.id, tax.id], 'due_after is exclusive')
  t.same(await ids('due_after=2026-02-01T00:00:00Z&due_before=2026-04-01T00:00:00Z'), [milk.id, cafe.id])
  t.same(await ids('q=MILK'), [milk.id], 'q ignores case')
  t.same(await ids('q=café'), [cafe.id], 'and case of non-ASCII letters')
  t.same(await ids('q=zoë'), [cafe.id], 'and searches the description')
  t.same(await ids('q=100%25'), [tax.id], 'a % in q is literal')
  t.same(await ids('q=Fil_'), [], 'an _ in q is literal')
  t.same(await ids('q=done_soon'), [tax.id])
  t.same(await ids('completed=true&q=e'), [cafe.id, someday.id])
  t.same(await ids('completed=false&due_after=2026-03-02T00:00:00Z&q=tax'), [tax.id])
  t.same(await ids('completed=false&due_after=2026-03-02T00:00:00Z&q=milk'), [])
})

t.test('count=true adds X-Total-Count: every matching row, not the page', async (t) => {
  const { app, db } = await buildTestApp(t)
  await insertTodos(db, 250, { title: "'todo ' || i", completed: 'i % 3 = 0' })
  const response = await app.inject('/todos?completed=true&limit=10&count=true')
  t.equal(response.headers['x-total-count'], '83')
  t.equal(response.json().length, 10)
  t.equal((await app.inject('/todos')).headers['x-total-count'], undefined, 'only when asked')
})

t.test('Link points to the next page, keeps the filters, and is absent on the last page', async (t) => {
  const { app, db } = await buildTestApp(t)
  await insertTodos(db, 25, { title: "'todo ' || i", completed: 'i % 2 = 0' })
  const first = await app.inject({ url: '/todos?completed=true&limit=10&sort=-title', headers: { host: 'api-test' } })
  t.equal(first.json().length, 10)
  const link = String(first.headers.link)
  t.match(link, /^<http:\/\/api-test\/todos\?completed=true&limit=10&sort=-title&cursor=[\w-]+>; rel="next"$/)
  const second = await app.inject(nextLink(link) ?? '')
  t.equal(second.json().length, 2)
  t.equal(second.headers.link, undefined)
  t.equal((await app.inject('/todos?limit=1000')).headers.link, undefined)
})

const SORTS = ['order', 'created_at', 'due_date', 'title'] as const
type SortKey = (typeof SORTS)[number]

/** Ascending order with NULLs last and id breaking ties; descending is its mirror. */
function compare(key: SortKey, descending: boolean) {
  return (a: Todo, b: Todo) => {
    const x = a[key]
    const y = b[key]
    let result: number
    if (x === y) result = 0
    else if (x === null) result = 1
    else if (y === null) result = -1
    else result = x < y ? -1 : 1
    if (result === 0) result = a.id - b.id
    return descending ? -result : result
  }
}

t.test('every sort order, both directions, on rows with ties and NULLs', async (t) => {
  const { app, db } = await buildTestApp(t)
  await insertTodos(db, 60, {
    title: "'Task ' || (i % 7)",
    order: 'CASE WHEN i % 5 = 0 THEN NULL ELSE i % 4 END',
    due_date: "CASE WHEN i % 3 = 0 THEN NULL ELSE timestamptz '2026-01-01' + (i % 4) * interval '1 day' END"
  })
  for (const key of SORTS) {
    for (const descending of [false, true]) {
      const sort = `${descending ? '-' : ''}${key}`
      const { rows } = await walk<Todo>(app, `/todos?sort=${sort}&limit=7`)
      t.equal(rows.length, 60, sort)
      t.same(rows.map((row) => row.id), [...rows].sort(compare(key, descending)).map((row) => row.id), `${sort}: paged order is the full order`)
    }
  }
  const byDefault = (await app.inject('/todos?limit=1000')).json() as Todo[]
  t.same(byDefault.map((row) => row.id), [...byDefault].sort(compare('order', false)).map((row) => row.id), 'default: order, then id')
})

t.test('walking thousands of rows while others are inserted and deleted: no row missed or repeated', async (t) => {
  const { app, db } = await buildTestApp(t)
  await insertTodos(db, 3000, {
    title: "'Task ' || (i % 800)",
    order: 'CASE WHEN i % 10 = 0 THEN NULL ELSE (i * 7919) % 500 END',
    due_date: "CASE WHEN i % 7 = 0 THEN NULL ELSE timestamptz '2026-01-01' + (i % 365) * interval '1 day' END",
    description: "'bulk'"
  })
  const original = new Set((await sql<{ id: number }>(db, 'SELECT id FROM todos')).map((row) => row.id))
  for (const sort of ['order', '-due_date', 'title', '-created_at']) {
    const deleted = new Set<number>()
    let round = 0
    // Between pages, another client inserts rows at random positions and deletes some.
    const churn = async () => {
      round++
      await insertTodos(db, 15, {
        title: "chr(65 + floor(random() * 26)::int) || ' late ' || md5(random()::text)",
        order: 'CASE WHEN random() < 0.2 THEN NULL ELSE floor(random() * 500)::int END',
        due_date: "timestamptz '2026-01-01' + floor(random() * 365) * interval '1 day'"
      })
      const gone = await sql<{ id: number }>(db, `DELETE FROM todos WHERE id IN (SELECT id FROM todos WHERE description = 'bulk' ORDER BY random() LIMIT 2) RETURNING id`)
      for (const row of gone) deleted.add(row.id)
    }
    const { rows, pages } = await walk<Todo>(app, `/todos?sort=${sort}&limit=137`, churn)
    const seen = rows.map((row) => row.id)
    t.equal(new Set(seen).size, seen.length, `${sort}: no row repeated across ${pages} pages (${round} rounds of churn)`)
    const missing = [...original].filter((id) => !deleted.has(id) && !seen.includes(id))
    t.same(missing, [], `${sort}: every row present from start to end was seen`)
    // Rows inserted meanwhile are listed when they land after the cursor; the newest rows
    // never do in -created_at order (they sort before every page already read).
    const late = seen.filter((id) => !original.has(id)).length
    if (sort === '-created_at') t.equal(late, 0, `${sort}: rows inserted meanwhile sort before the cursor`)
    else t.ok(late > 0, `${sort}: ${late} rows inserted meanwhile were picked up`)
    await sql(db, `DELETE FROM todos WHERE description IS DISTINCT FROM 'bulk'`)
    for (const id of deleted) original.delete(id)
  }
})

t.test('bad list parameters are 400 problems naming the parameter', async (t) => {
  const { app, db } = await buildTestApp(t)
  await insertTodos(db, 5, { title: "'todo ' || i", order: 'i' })
  const cases: Array<[string, string, RegExp | string]> = [
    ['completed=maybe', 'completed', 'must be boolean'],
    ['limit=0', 'limit', 'must be >= 1'],
    ['limit=1001', 'limit', 'must be <= 1000'],
    ['limit=ten', 'limit', 'must be an integer written in decimal digits'],
    ['sort=importance', 'sort', /must be one of: order, -order, created_at/],
    ['due_before=yesterday', 'due_before', /date-time/],
    ['q=', 'q', /fewer than 1/],
    [`q=${'x'.repeat(201)}`, 'q', /more than 200/]
  ]
  for (const [query, field, message] of cases) {
    const response = await app.inject(`/todos?${query}`)
    expectProblem(t, response, 400, { code: 'VALIDATION_FAILED', errors: [{ in: 'querystring', field, message }] }, query)
  }

  const page = await app.inject('/todos?limit=2&sort=order')
  const cursor = new URL(String(/<([^>]+)>/.exec(String(page.headers.link))?.[1])).searchParams.get('cursor') ?? ''
  const badCursors: Array<[string, string]> = [
    ['cursor=not-a-cursor', 'garbage'],
    [`cursor=${Buffer.from('[1,2').toString('base64url')}`, 'broken JSON'],
    [`cursor=${Buffer.from('["order","x",1]').toString('base64url')}`, 'a value of the wrong type'],
    [`cursor=${Buffer.from('["order",1,-4]').toString('base64url')}`, 'a negative id'],
    [`sort=title&cursor=${cursor}`, 'a cursor from another sort order']
  ]
  for (const [query, why] of badCursors) {
    const response = await app.inject(`/todos?${query}`)
    t.equal(response.statusCode, 400, why)
    t.match(response.json(), { code: 'INVALID_CURSOR' }, why)
  }
  t.equal((await app.inject(`/todos?sort=order&cursor=${cursor}`)).statusCode, 200, 'the real cursor works')
})

t.test('a cursor stays usable whatever the title at the page boundary', async (t) => {
  const { app, api } = await buildTestApp(t)
  for (const title of ['é'.repeat(500), '"'.repeat(500), '😺'.repeat(500), '\u0001'.repeat(500)]) await api.create('/todos', { title })
  await api.create('/todos', { title: 'last' })
  const { rows, pages } = await walk<Todo>(app, '/todos?sort=title&limit=1')
  t.equal(rows.length, 5)
  t.equal(pages, 5)
})
