/**
 * "No offset scans": however deep a page is, its query must be an index range scan that
 * starts at the cursor. Checked on the query plans PostgreSQL actually runs.
 */
import t from 'tap'
import type { Owner } from '../../src/accounts/owner.js'
import { newToken } from '../../src/accounts/tokens.js'
import { resourceStatements } from '../../src/resources/engine/statements.js'
import todos from '../../src/resources/todos/index.js'
import { buildTestApp, insertTodos, sql, withClient } from '../helper.js'
import { nextLink } from '../support/http.js'

interface PlanNode {
  'Node Type': string
  'Index Name'?: string
  'Relation Name'?: string
  'Index Cond'?: string
  'Rows Removed by Filter'?: number
  Plans?: PlanNode[]
}

const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)]

t.test("deep pages of every sort, filtered or not, are index range scans from the cursor within the owner's rows", async (t) => {
  const { app, db } = await buildTestApp(t)
  const columns = {
    title: "'Task ' || (i % 997)",
    order: 'CASE WHEN i % 10 = 0 THEN NULL ELSE (i * 7919) % 5000 END',
    due_date: "CASE WHEN i % 7 = 0 THEN NULL ELSE timestamptz '2026-01-01' + (i % 365) * interval '1 day' END",
    completed: 'i % 3 = 0'
  }
  // The caller (the local user) and another user with as many rows, interleaved.
  const [other] = await sql<{ id: number }>(db, `INSERT INTO users (email, name) VALUES ('other@example.com', 'Other') RETURNING id`)
  await insertTodos(db, 20000, { ...columns, owner_id: `CASE WHEN i % 2 = 0 THEN (SELECT id FROM users WHERE builtin) ELSE ${other?.id} END` })
  await insertTodos(db, 10000, columns)
  const [local] = await sql<{ id: number }>(db, 'SELECT id FROM users WHERE builtin')
  // A token of the local user's: statements then find the owner through it.
  const token = newToken()
  await sql(db, `INSERT INTO api_tokens (user_id, name, token_hash, prefix) VALUES ($1, 'plan', $2, $3)`, [local?.id, token.hash, token.display])
  // Other users' tokens, as a real service has: the token is then found through its index too.
  await sql(db, `INSERT INTO api_tokens (user_id, name, token_hash, prefix) SELECT $1, 'other', sha256(i::text::bytea), 'tapi_x' FROM generate_series(1, 5000) i`, [other?.id])
  await sql(db, 'ANALYZE')

  const owners: Array<[string, Owner]> = [
    ['user id', { userId: local?.id as number }],
    ['token', { tokenHash: token.hash }]
  ]
  for (const sort of ['order', '-order', 'due_date', '-due_date', 'title', '-title', 'created_at', '-created_at']) {
    for (const query of ['', 'completed=false']) {
      // A cursor about 15 000 rows in (through NULLs for the nullable sorts), from the API
      // itself; both ways of naming the owner read the same rows, so they share it.
      let url: string | undefined = `/todos?sort=${sort}&limit=1000${query ? `&${query}` : ''}`
      for (let page = 0; page < (query ? 10 : 15) && url; page++) url = nextLink((await app.inject(url)).headers.link)
      const cursor = new URLSearchParams(url?.split('?')[1]).get('cursor') ?? undefined
      t.ok(cursor, `${sort} ${query}: got a deep cursor`)
      for (const [ownerKind, owner] of owners) {
        const filters = query ? { completed: false } : {}
        const { text, values } = resourceStatements(todos).list(owner, filters, { sort, limit: 100, cursor })
        const [{ 'QUERY PLAN': [{ Plan: plan }] }] = (await withClient(db, (client) =>
          client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, values).then((result) => result.rows)
        )) as [{ 'QUERY PLAN': [{ Plan: PlanNode }] }]
        const all = nodes(plan)
        const scan = all.find((node) => /Index/.test(node['Node Type']) && node['Relation Name'] === 'todos')
        const label = `${sort}${query ? ` with ${query}` : ''} (owner by ${ownerKind})`
        t.ok(scan, `${label}: an index scan (${all.map((node) => node['Node Type']).join(' > ')})`)
        t.match(scan?.['Index Cond'], /owner_id = /, `${label}: the owner is an index condition`)
        t.match(scan?.['Index Cond'], /id\) [<>]/, `${label}: the cursor is an index condition`)
        t.notOk(all.some((node) => node['Node Type'] === 'Sort' || node['Node Type'] === 'Seq Scan'), `${label}: no sort, no sequential scan`)
        const skipped = all.reduce((sum, node) => sum + (node['Rows Removed by Filter'] ?? 0), 0)
        t.ok(skipped < 1000, `${label}: ${skipped} rows filtered out, not the ${query ? 10000 : 15000} before the cursor`)

        // The statement is a named prepared statement: after a few runs PostgreSQL may plan
        // it once for any parameters (a generic plan). That plan must be the same range scan.
        const [{ 'QUERY PLAN': [{ Plan: generic }] }] = (await withClient(db, async (client) => {
          await client.query('SET plan_cache_mode = force_generic_plan')
          await client.query(`PREPARE page AS ${text}`)
          const literal = (value: unknown) =>
            value === null ? 'NULL' : typeof value === 'number' ? String(value) : Buffer.isBuffer(value) ? `'\\x${value.toString('hex')}'::bytea` : client.escapeLiteral(String(value))
          const literals = values.map(literal)
          return (await client.query(`EXPLAIN (FORMAT JSON) EXECUTE page(${literals.join(', ')})`)).rows
        })) as [{ 'QUERY PLAN': [{ Plan: PlanNode }] }]
        const genericNodes = nodes(generic)
        const genericScan = genericNodes.find((node) => /Index/.test(node['Node Type']) && node['Relation Name'] === 'todos')
        t.equal(genericScan?.['Index Name'], scan?.['Index Name'], `${label}: the generic plan scans the same index`)
        t.match(genericScan?.['Index Cond'], /id\) [<>]/, `${label}: with the cursor as its index condition`)
        t.notOk(genericNodes.some((node) => node['Node Type'] === 'Sort' || node['Node Type'] === 'Seq Scan'), `${label}: generic plan, no sort, no sequential scan`)
      }
    }
  }
})

t.test("the filters of lists, subtasks, labels and priority read the owner's matching rows through an index, deep pages too", async (t) => {
  const { app, db } = await buildTestApp(t)
  const [other] = await sql<{ id: number }>(db, `INSERT INTO users (email, name) VALUES ('other@example.com', 'Other') RETURNING id`)
  const lists = await sql<{ id: number }>(db, `INSERT INTO lists (title, owner_id) SELECT 'List ' || i, (SELECT id FROM users WHERE builtin) FROM generate_series(1, 20) i RETURNING id`)
  const first = lists[0]?.id as number
  const list = first + 1
  const columns = {
    title: "'Task ' || i",
    order: 'CASE WHEN i % 10 = 0 THEN NULL ELSE (i * 7919) % 5000 END',
    labels: "CASE WHEN i % 3 = 0 THEN ARRAY['l' || (i % 50)] ELSE '{}' END",
    priority: '1 + i % 4'
  }
  // Another user's rows, then the caller's: a fifth in the inbox, the rest over 20 lists.
  await insertTodos(db, 20000, { ...columns, owner_id: String(other?.id) })
  await insertTodos(db, 20000, { ...columns, list_id: `CASE WHEN i % 5 = 0 THEN NULL ELSE ${first} + i % 20 END` })
  // 2 000 subtasks of one todo of that list.
  const [parent] = await sql<{ id: number }>(db, `SELECT min(id) AS id FROM todos WHERE list_id = $1`, [list])
  await insertTodos(db, 2000, { ...columns, list_id: String(list), parent_id: String(parent?.id) })
  await sql(db, 'ANALYZE')

  const cases: Array<{ query: string; filters: Record<string, unknown>; sort?: string; index: RegExp }> = [
    { query: `list_id=${list}`, filters: { list_id: list }, index: /^todos_owner_list_order_idx$/ },
    { query: 'list_id=null', filters: { list_id: null }, index: /^todos_owner_list_order_idx$/ },
    { query: `parent_id=${parent?.id}`, filters: { parent_id: parent?.id }, index: /^todos_owner_parent_idx$/ },
    { query: 'sort=-priority', filters: {}, sort: '-priority', index: /^todos_owner_priority_idx$/ },
    { query: 'label=l3', filters: { label: ['l3'] }, index: /^todos_labels_idx$/ }
  ]
  for (const { query, filters, sort = 'order', index } of cases) {
    let url: string | undefined = `/todos?${query}&limit=40`
    for (let page = 0; page < 3 && url; page++) url = nextLink((await app.inject(url)).headers.link)
    const cursor = new URLSearchParams(url?.split('?')[1]).get('cursor') ?? undefined
    t.ok(cursor, `${query}: a cursor three pages in`)
    t.notMatch(query, /=undefined$/, 'the ids the filters name exist')
    const { text, values } = resourceStatements(todos).list({ userId: (await sql<{ id: number }>(db, 'SELECT id FROM users WHERE builtin'))[0]?.id as number }, filters, { sort, limit: 100, cursor })
    const [{ 'QUERY PLAN': [{ Plan: plan }] }] = (await withClient(db, (client) =>
      client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, values).then((result) => result.rows)
    )) as [{ 'QUERY PLAN': [{ Plan: PlanNode }] }]
    const all = nodes(plan)
    const types = all.map((node) => `${node['Node Type']}${node['Index Name'] ? ` ${node['Index Name']}` : ''}`).join(' > ')
    const scans = all.filter((node) => node['Relation Name'] === 'todos' || node['Node Type'] === 'Bitmap Index Scan')
    t.ok(scans.some((node) => index.test(node['Index Name'] ?? '')), `${query}: through ${index} (${types})`)
    t.notOk(all.some((node) => node['Node Type'] === 'Seq Scan'), `${query}: no sequential scan`)
    if (!query.startsWith('label')) t.notOk(all.some((node) => node['Node Type'] === 'Sort'), `${query}: no sort (${types})`)
    const skipped = all.reduce((sum, node) => sum + (node['Rows Removed by Filter'] ?? 0), 0)
    t.ok(skipped < 1000, `${query}: ${skipped} rows filtered out`)
  }
})
