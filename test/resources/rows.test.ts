/**
 * Items and pages are read from PostgreSQL as JSON arrays of values and written with
 * JSON.stringify (resources/engine/rows.ts); an answer recorded with an Idempotency-Key
 * is the same text, kept. A client must not be able to tell: the bytes must be those
 * Fastify's serializer writes from the item schema, for rows read the usual way
 * (node-postgres, timestamps as ISO strings). The reference below does exactly that, in a
 * Fastify of its own.
 */
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import pg from 'pg'
import t from 'tap'
import { itemColumns, type AnyResource } from '../../src/resources/engine/define.js'
import { resourceStatements } from '../../src/resources/engine/statements.js'
import { isoTimestampTypes } from '../../src/db/timestamps.js'
import { seedDatabase } from '../../src/dev/seed.js'
import cats from '../../src/resources/cats/index.js'
import todos from '../../src/resources/todos/index.js'
import { buildTestApp, sql } from '../helper.js'
import { nextLink } from '../support/http.js'

const awkward = [
  'quote " backslash \\ slash /',
  'newline\n tab\t return\r backspace\b formfeed\f',
  'controls \u0001 \u001f and DEL \u007f',
  'unicode é ß 日本語 😀 combining é, RTL עברית',
  'separators \u2028 \u2029 and NEL \u0085',
  '<script>alert(1)</script> & \'apostrophe\'',
  'x'.repeat(500)
]

/** The JSON array Fastify's schema serializer writes for these rows, in this order. */
async function reference(db: string, resource: AnyResource, ids: number[], urlBase: string): Promise<string> {
  const columns = itemColumns(resource)
    .map(({ name }) => `"${name}"`)
    .join(', ')
  const client = new pg.Client({ connectionString: db, types: isoTimestampTypes })
  await client.connect()
  const { rows } = await client.query<{ id: number }>(`SELECT ${columns} FROM ${resource.table} WHERE id = ANY($1)`, [ids]).finally(() => client.end())
  const byId = new Map(rows.map((row) => [row.id, { ...row, url: `${urlBase}${row.id}` }]))
  const app = Fastify()
  app.addSchema(resource.schemas.item)
  app.get('/', { schema: { response: { 200: Type.Array(Type.Ref(resource.schemas.item)) } } }, async () => ids.map((id) => byId.get(id)))
  const body = (await app.inject('/')).body
  await app.close()
  return body
}

t.test('todos: every page and every item is byte for byte what the schema serializer writes', async (t) => {
  const { app, db } = await buildTestApp(t)
  await seedDatabase(db)
  // Edge values: every kind of awkward text, nulls, the ends of the int4 and date ranges.
  await sql(
    db,
    `INSERT INTO todos (owner_id, title, description, completed, "order", due_date)
     SELECT (SELECT id FROM users WHERE builtin), title, CASE WHEN n % 2 = 0 THEN NULL ELSE title END, n % 2 = 0,
            (ARRAY[NULL, -2147483648, 2147483647, 0])[n % 4 + 1],
            (ARRAY[NULL, timestamptz '1000-01-01T00:00:00Z', timestamptz '9999-12-31T23:59:59.999Z', timestamptz '2026-06-30T12:34:56.7+02:00'])[n % 4 + 1]
     FROM unnest($1::text[]) WITH ORDINALITY AS s(title, n)`,
    [awkward]
  )
  await sql(db, `UPDATE todos SET description = 'edited' WHERE id % 50 = 0`) // updated_at after created_at
  // A host without a dot: AUTH_MODE=local serves no DNS name (plugins/auth.ts).
  const host = 'api-example:8443'
  const base = `http://${host}/todos/`

  for (const query of ['limit=1000', 'sort=-due_date&limit=37', 'sort=title&limit=100', 'sort=created_at&completed=true', 'q=%C3%A9&limit=5', 'sort=-order&limit=250']) {
    let url: string | undefined = `/todos?${query}`
    let pages = 0
    while (url) {
      const list = await app.inject({ url, headers: { host } })
      t.equal(list.headers['content-type'], 'application/json; charset=utf-8')
      const ids = (list.json() as Array<{ id: number }>).map((item) => item.id)
      const wanted = await reference(db, todos, ids, base)
      if (list.body !== wanted) t.fail(`${url}: the page differs from the serializer's`, { found: list.body.slice(0, 400), wanted: wanted.slice(0, 400) })
      else pages++
      url = nextLink(list.headers.link)
    }
    t.ok(pages > 0, `${query}: ${pages} page(s), each identical to the serializer's`)
  }

  const all = (await sql<{ id: number }>(db, 'SELECT id FROM todos ORDER BY id')).map((row) => row.id)
  const differing: number[] = []
  for (const id of all.filter((id) => id % 7 === 0 || id > 300)) {
    const item = await app.inject({ url: `/todos/${id}`, headers: { host } })
    if (`[${item.body}]` !== (await reference(db, todos, [id], base))) differing.push(id)
  }
  t.same(differing, [], 'GET by id too')

  const created = await app.inject({ method: 'POST', url: '/todos', headers: { host }, payload: { title: awkward[3], due_date: '9999-12-31T23:59:59.999Z', order: -2147483648 } })
  const id = (created.json() as { id: number }).id
  t.equal(`[${created.body}]`, await reference(db, todos, [id], base), 'what POST answers')
  // With an Idempotency-Key the answer is written (and recorded) by PostgreSQL.
  for (const [n, payload] of [{ title: awkward[0], description: awkward[2], due_date: '1000-01-01T00:00:00Z' }, { title: awkward[5], order: 2147483647, due_date: '2026-06-30T12:34:56.7+02:00' }].entries()) {
    const keyed = await app.inject({ method: 'POST', url: '/todos', headers: { host, 'idempotency-key': `list-json-${n}` }, payload })
    const replay = await app.inject({ method: 'POST', url: '/todos', headers: { host, 'idempotency-key': `list-json-${n}` }, payload })
    t.equal(replay.headers['idempotent-replayed'], 'true')
    const wanted = await reference(db, todos, [(keyed.json() as { id: number }).id], base)
    t.equal(`[${keyed.body}]`, wanted, `what a POST with an Idempotency-Key answers (${n})`)
    t.equal(`[${replay.body}]`, wanted, `and its replay (${n})`)
  }
  const patched = await app.inject({ method: 'PATCH', url: `/todos/${id}`, headers: { host }, payload: { description: awkward[1], due_date: null } })
  t.equal(`[${patched.body}]`, await reference(db, todos, [id], base), 'what PATCH answers')

  const edge = (await app.inject('/todos?q=controls')).json() as Array<{ title: string }>
  t.equal(edge[0]?.title, awkward[2], 'and the text survives the round trip')
})

t.test('cats too, and an empty page is []', async (t) => {
  const { app, db } = await buildTestApp(t)
  t.equal((await app.inject('/cats')).body, '[]')
  await seedDatabase(db)
  const names = awkward.map((text) => text.slice(0, 200))
  await sql(db, `INSERT INTO cats (name, breed, price, owner_id) SELECT name, NULL, 2147483647, (SELECT id FROM users WHERE builtin) FROM unnest($1::text[]) AS s(name)`, [names])
  for (const query of ['limit=1000', 'sort=-price&limit=33', 'breed=bengal']) {
    const list = await app.inject(`/cats?${query}`)
    const ids = (list.json() as Array<{ id: number }>).map((item) => item.id)
    t.equal(list.body, await reference(db, cats, ids, 'http://localhost:80/cats/'), query)
  }
  const one = await app.inject('/cats/3')
  t.equal(`[${one.body}]`, await reference(db, cats, [3], 'http://localhost:80/cats/'), 'GET by id')
})

t.test('a sort key must be a property of the item, which the cursor reads it from', async (t) => {
  t.throws(() => resourceStatements({ ...todos, sorts: { ...todos.sorts, version: { type: 'integer' } } }), /sort key version is not a property of the item schema/)
})
