import t from 'tap'
import { expectProblem, listeningTestApp, sql, usersWithTokens, withClient } from '../helper.js'

t.test('labels, priority and metadata round-trip over HTTP; labels are trimmed and stored once each', async (t) => {
  const { http, db } = await listeningTestApp(t)
  const api = http()
  const plain = await api.create('/todos', { title: 'As before' })
  t.match(plain, { list_id: null, parent_id: null, labels: [], priority: 1, completed_at: null, metadata: {} }, 'defaults')
  const metadata = { colour: '#ff0000', nested: { list: [1, 2.5, -3e-7, null, true, 'ü 🎉'], empty: {} }, big: 9007199254740991, quote: 'say "hi"\n' }
  const todo = await api.create('/todos', { title: 'Rich', labels: [' work ', 'home', 'work', 'Work', 'home'], priority: 4, metadata })
  t.same(todo.labels, ['work', 'home', 'Work'], 'trimmed, duplicates dropped, first order kept, case kept')
  t.equal(todo.priority, 4)
  t.same(todo.metadata, metadata, 'metadata comes back with the same values')
  t.same((await api.get(`/todos/${todo.id}`)).json(), todo)
  t.same(await sql(db, 'SELECT labels, priority, metadata FROM todos WHERE id = $1', [todo.id]), [{ labels: ['work', 'home', 'Work'], priority: 4, metadata }], 'stored as text[], integer, jsonb')
  const changed = await api.patch(`/todos/${todo.id}`, { labels: ['a', 'a'], priority: 2, metadata: { added: true } })
  t.match(changed.json(), { labels: ['a'], priority: 2 })
  t.same(changed.json().metadata, { ...metadata, added: true }, 'a PATCH merges metadata (RFC 7396): the keys it names change, the others stay')
  t.same((await api.patch(`/todos/${todo.id}`, { labels: [] })).json().labels, [])
})

t.test('every new field is validated, each with its own message, and a refused request changes nothing', async (t) => {
  const { http, db } = await listeningTestApp(t)
  const api = http()
  const todo = await api.create('/todos', { title: 'Target' })
  const before = await sql(db, 'SELECT * FROM todos ORDER BY id')
  const big = { blob: 'x'.repeat(8200) }
  const deep = (levels: number): object => (levels <= 1 ? {} : { a: deep(levels - 1) })
  const wide = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i]))
  const cases: Array<[object, string, RegExp]> = [
    [{ labels: Array.from({ length: 21 }, (_, i) => `l${i}`) }, 'labels', /at most 20|fewer than 21|more than 20/i],
    [{ labels: ['x'.repeat(61)] }, 'labels.0', /60/],
    [{ labels: ['   '] }, 'labels.0', /blank|fewer than 1|shorter/],
    [{ labels: [''] }, 'labels.0', /fewer than 1|shorter|blank/],
    [{ labels: 'work' }, 'labels', /array/],
    [{ labels: [5] }, 'labels.0', /string/],
    [{ priority: 0 }, 'priority', />= 1/],
    [{ priority: 5 }, 'priority', /<= 4/],
    [{ priority: null }, 'priority', /integer/],
    [{ priority: 1.5 }, 'priority', /integer/],
    [{ metadata: [1, 2] }, 'metadata', /object/],
    [{ metadata: 'text' }, 'metadata', /object/],
    [{ metadata: null }, 'metadata', /object/],
    [{ metadata: wide }, 'metadata', /50/],
    [{ metadata: big }, 'metadata', /at most 8192 bytes written as JSON/],
    [{ metadata: deep(17) }, 'metadata', /at most 16 deep/],
    [{ list_id: 0 }, 'list_id', />= 1/],
    [{ parent_id: 'one' }, 'parent_id', /integer/],
    [{ completed_at: '2026-01-01T00:00:00Z' }, 'completed_at', /not a known field/]
  ]
  for (const [body, field, message] of cases) {
    const label = JSON.stringify(body).slice(0, 50)
    expectProblem(t, await api.post('/todos', { title: 'New', ...body }), 400, { code: 'VALIDATION_FAILED', errors: [{ in: 'body', field, message }] }, `POST ${label}`)
    expectProblem(t, await api.patch(`/todos/${todo.id}`, body), 400, { code: 'VALIDATION_FAILED', errors: [{ in: 'body', field, message }] }, `PATCH ${label}`)
  }
  t.same(await sql(db, 'SELECT * FROM todos ORDER BY id'), before, 'nothing was written')
  // Just under the limits is fine: 8 KiB as returned, `{"blob": "x…"}` with jsonb's space.
  const fits = await api.post('/todos', { title: 'Fits', metadata: { blob: 'x'.repeat(8192 - 12) }, labels: Array.from({ length: 20 }, (_, i) => `${i}`.padEnd(60, 'x')) })
  t.equal(fits.statusCode, 201, fits.body)
  t.equal(Buffer.byteLength(JSON.stringify(fits.json().metadata), 'utf8') + 1, 8192, 'exactly 8192 bytes as returned')
  t.equal((await api.post('/todos', { title: 'Deep', metadata: deep(16) })).statusCode, 201, '16 deep')
  // One byte more as returned: only the database sees it, and says so as a 422.
  const over = await api.post('/todos', { title: 'Over', metadata: { blob: 'x'.repeat(8192 - 11) } })
  expectProblem(t, over, 422, { code: 'METADATA_TOO_LARGE', errors: [{ field: 'metadata' }] }, 'one byte over, as stored')
})

t.test('PATCH merges metadata as JSON Merge Patch does, in the statement, and a merge past the limits changes nothing', async (t) => {
  const { http, db } = await listeningTestApp(t)
  const api = http()
  const todo = await api.create('/todos', { title: 'Merge', metadata: { keep: 1, drop: 2, nested: { a: 1, b: { c: 2 } }, list: [1, 2] } })
  for (const type of ['application/merge-patch+json', 'application/json']) {
    const merged = await api.patch(`/todos/${todo.id}`, { metadata: { drop: null, nested: { b: { c: null, d: 3 }, e: null }, list: [3], added: { x: null, y: 1 } } }, { 'content-type': type })
    t.equal(merged.statusCode, 200, `${type}: ${merged.body}`)
    t.same(merged.json().metadata, { keep: 1, nested: { a: 1, b: { d: 3 } }, list: [3], added: { y: 1 } }, `${type}: nulls remove keys, objects merge, arrays and values replace`)
  }
  t.same((await api.patch(`/todos/${todo.id}`, { metadata: {} })).json().metadata, { keep: 1, nested: { a: 1, b: { d: 3 } }, list: [3], added: { y: 1 } }, 'an empty object changes nothing')
  // Two patches that each fit but not together, at once: the check is on the merged row in
  // the statement, so the one that waited for the other's row lock sees its result.
  const race = await api.create('/todos', { title: 'Race', metadata: { small: 1 } })
  const half = (key: string) => ({ [key]: 'x'.repeat(4095) })
  const answers = await Promise.all([api.patch(`/todos/${race.id}`, { metadata: half('one') }), api.patch(`/todos/${race.id}`, { metadata: half('two') })])
  t.same(answers.map((answer) => answer.statusCode).sort(), [200, 422], 'one merges, the other is refused')
  const refused = answers.find((answer) => answer.statusCode === 422)
  if (refused) expectProblem(t, refused, 422, { code: 'METADATA_TOO_LARGE', errors: [{ field: 'metadata' }] }, 'past 8 KiB once merged')
  const [stored] = await sql<{ metadata: Record<string, unknown>; version: number }>(db, 'SELECT metadata, version FROM todos WHERE id = $1', [race.id])
  t.equal(Object.keys(stored?.metadata ?? {}).length, 2, 'the small key and one of the two')
  t.equal(stored?.version, 2, 'one write')
  const keys = Object.fromEntries(Array.from({ length: 49 }, (_, i) => [`k${i}`, i]))
  expectProblem(t, await api.patch(`/todos/${race.id}`, { metadata: keys }), 422, { code: 'METADATA_TOO_LARGE' }, 'past 50 keys once merged')
  t.same((await sql(db, 'SELECT metadata FROM todos WHERE id = $1', [race.id]))[0], { metadata: stored?.metadata }, 'unchanged')
})

t.test('completed_at is set and cleared by the database as completed changes, whatever a statement writes', async (t) => {
  const { http, db } = await listeningTestApp(t)
  const api = http()
  const open = await api.create('/todos', { title: 'Open' })
  t.equal(open.completed_at, null)
  const done = await api.create('/todos', { title: 'Done', completed: true })
  t.match(done.completed_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  t.equal(done.completed_at, done.created_at, 'set in the creating statement')
  const completed = (await api.patch(`/todos/${open.id}`, { completed: true })).json()
  t.ok(completed.completed_at >= String(open.created_at), 'set when it becomes true')
  await new Promise((resolve) => setTimeout(resolve, 20))
  const renamed = (await api.patch(`/todos/${open.id}`, { title: 'Renamed', completed: true })).json()
  t.equal(renamed.completed_at, completed.completed_at, 'kept while it stays true')
  const reopened = (await api.patch(`/todos/${open.id}`, { completed: false })).json()
  t.equal(reopened.completed_at, null, 'cleared when it becomes false')
  // Straight SQL cannot forge it either.
  await sql(db, `UPDATE todos SET completed_at = '2000-01-01' WHERE id = $1`, [open.id])
  await sql(db, `UPDATE todos SET completed_at = '2000-01-01' WHERE id = $1`, [done.id])
  await sql(db, `INSERT INTO todos (title, owner_id, completed_at) VALUES ('forged', (SELECT id FROM users WHERE builtin), '2000-01-01')`)
  t.same(await sql(db, `SELECT title, completed_at IS NULL AS unset, completed_at = $1::timestamptz AS kept FROM todos ORDER BY id`, [done.completed_at]), [
    { title: 'Renamed', unset: true, kept: null },
    { title: 'Done', unset: false, kept: true },
    { title: 'forged', unset: true, kept: null }
  ])
})

t.test('subtasks: same list as the parent, at most 4 levels below a top-level todo, never a cycle; deleting a todo deletes its subtasks', async (t) => {
  const { http, db } = await listeningTestApp(t)
  const api = http()
  const list = await api.create('/lists', { title: 'Project' })
  const other = await api.create('/lists', { title: 'Other' })
  const root = await api.create('/todos', { title: 'Root', list_id: list.id })
  const chain = [root]
  for (let level = 1; level <= 4; level++) chain.push(await api.create('/todos', { title: `Level ${level}`, parent_id: (chain[level - 1] as { id: number }).id }))
  t.same(chain.map((todo) => todo.list_id), chain.map(() => list.id), "a subtask created without a list is in its parent's")
  const deepest = chain[4] as { id: number }
  expectProblem(t, await api.post('/todos', { title: 'Level 5', parent_id: deepest.id }), 422, { code: 'TOO_DEEP', errors: [{ in: 'body', field: 'parent_id' }] })
  expectProblem(t, await api.patch(`/todos/${root.id}`, { parent_id: deepest.id }), 422, { code: 'PARENT_CYCLE', errors: [{ field: 'parent_id' }] })
  expectProblem(t, await api.patch(`/todos/${root.id}`, { parent_id: root.id }), 422, { code: 'PARENT_CYCLE' })
  expectProblem(t, await api.post('/todos', { title: 'Elsewhere', parent_id: root.id, list_id: other.id }), 422, { code: 'PARENT_IN_OTHER_LIST', errors: [{ field: 'list_id' }] })
  expectProblem(t, await api.patch(`/todos/${deepest.id}`, { list_id: other.id }), 422, { code: 'PARENT_IN_OTHER_LIST' })
  const loose = await api.create('/todos', { title: 'Loose', list_id: other.id })
  const child = await api.create('/todos', { title: 'Child', parent_id: loose.id })
  expectProblem(t, await api.patch(`/todos/${loose.id}`, { parent_id: (chain[3] as { id: number }).id }), 422, { code: 'TOO_DEEP' }, 'a subtree moved too deep')

  // Moving a todo moves its subtasks; re-parenting brings a todo into its new parent's list.
  const moved = await api.patch(`/todos/${root.id}`, { list_id: other.id }, { 'if-match': '"1"' })
  t.equal(moved.statusCode, 200, moved.body)
  t.same(await sql(db, 'SELECT DISTINCT list_id FROM todos WHERE id = ANY($1)', [chain.map((todo) => todo.id)]), [{ list_id: other.id }], 'the whole tree moved')
  const adopted = (await api.patch(`/todos/${loose.id}`, { parent_id: root.id })).json()
  t.match(adopted, { parent_id: root.id, list_id: other.id })

  const before = await sql(db, 'SELECT count(*)::int AS n FROM todos')
  expectProblem(t, await api.delete(`/todos/${root.id}`, { 'if-match': '"1"' }), 412, {}, 'a stale If-Match deletes nothing')
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM todos'), before)
  const current = (await api.get(`/todos/${root.id}`)).headers.etag as string
  t.equal((await api.delete(`/todos/${root.id}`, { 'if-match': current })).statusCode, 204)
  t.same(await sql(db, 'SELECT title FROM todos ORDER BY id'), [], 'root, its four levels, the adopted todo and its child: all gone')
  t.equal((await api.get(`/todos/${child.id}`)).statusCode, 404)

  // Re-parenting alone (no list_id in the request) into another list takes the subtree too.
  const home = await api.create('/todos', { title: 'Home parent', list_id: list.id })
  const stray = await api.create('/todos', { title: 'Stray', list_id: other.id })
  const strayChild = await api.create('/todos', { title: 'Stray child', parent_id: stray.id })
  t.match((await api.patch(`/todos/${stray.id}`, { parent_id: home.id })).json(), { list_id: list.id })
  t.same(await sql(db, 'SELECT list_id FROM todos WHERE id = $1', [strayChild.id]), [{ list_id: list.id }], "its subtask followed it into the new parent's list")
  // On a create, the id the new row will get names no todo yet.
  const [{ next }] = (await sql<{ next: number }>(db, `SELECT last_value::int + 1 AS next FROM pg_sequences WHERE sequencename = 'todos_id_seq'`)) as [{ next: number }]
  expectProblem(t, await api.post('/todos', { title: 'Self', parent_id: next }), 422, { code: 'PARENT_NOT_FOUND' }, 'its own next id is a parent that does not exist')
})

t.test("a subtask created while its parent moves to another list ends up in the parent's list, whichever commits first", async (t) => {
  const { http, db } = await listeningTestApp(t)
  const api = http()
  const [from, to] = [await api.create('/lists', { title: 'From' }), await api.create('/lists', { title: 'To' })]
  const parent = await api.create('/todos', { title: 'Moving', list_id: from.id })
  await withClient(db, async (client) => {
    // The move, in a transaction held open while the subtask is created.
    await client.query('BEGIN')
    await client.query('UPDATE todos SET list_id = $1 WHERE id = $2', [to.id, parent.id])
    const created = api.post('/todos', { title: 'Sub', parent_id: parent.id })
    await new Promise((resolve) => setTimeout(resolve, 300))
    await client.query('COMMIT')
    const answer = await created
    t.equal(answer.statusCode, 201, answer.body)
    t.equal(answer.json().list_id, to.id, "created in the list its parent moved to, not the one it read before")
  })
  // And the other way round: the subtask first, then the move takes it along.
  await withClient(db, async (client) => {
    await client.query('BEGIN')
    await client.query(`INSERT INTO todos (title, owner_id, parent_id) SELECT 'Sub 2', owner_id, id FROM todos WHERE id = $1`, [parent.id])
    const moved = api.patch(`/todos/${parent.id}`, { list_id: from.id })
    await new Promise((resolve) => setTimeout(resolve, 300))
    await client.query('COMMIT')
    t.equal((await moved).statusCode, 200)
  })
  t.same(await sql(db, 'SELECT DISTINCT list_id FROM todos'), [{ list_id: from.id }], 'parent and both subtasks in one list')
})

t.test("another user's todo cannot be a parent: the same answer as a todo that does not exist", async (t) => {
  const { http, db } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada, bob } = await usersWithTokens(db, ['ada', 'bob'])
  const adas = await http(ada.headers).create('/todos', { title: "Ada's" })
  const bobs = await http(bob.headers).create('/todos', { title: "Bob's" })
  const answers = []
  for (const id of [adas.id, 2147483647]) {
    for (const answer of [await http(bob.headers).post('/todos', { title: 'sub', parent_id: id }), await http(bob.headers).patch(`/todos/${bobs.id}`, { parent_id: id })]) {
      expectProblem(t, answer, 422, { code: 'PARENT_NOT_FOUND', errors: [{ in: 'body', field: 'parent_id' }] })
      answers.push({ ...answer.json(), request_id: undefined, instance: undefined })
    }
  }
  t.same(answers[0], answers[2], 'create: the same body')
  t.same(answers[1], answers[3], 'update: the same body')
  t.same(await sql(db, 'SELECT title, parent_id FROM todos ORDER BY id'), [{ title: "Ada's", parent_id: null }, { title: "Bob's", parent_id: null }])
  t.same((await http(bob.headers).get(`/todos?parent_id=${adas.id}`)).json(), [], "and Ada's subtasks are not Bob's to list")
})

t.test('filters: list_id (null: the inbox), parent_id (null: top level), label (any of), priority; sort by priority', async (t) => {
  const { http } = await listeningTestApp(t)
  const api = http()
  const list = await api.create('/lists', { title: 'L' })
  const a = await api.create('/todos', { title: 'a', labels: ['x'], priority: 2, order: 1 })
  const b = await api.create('/todos', { title: 'b', list_id: list.id, labels: ['y', 'z'], priority: 4, order: 2 })
  const c = await api.create('/todos', { title: 'c', parent_id: b.id, labels: ['z'], order: 3 })
  const d = await api.create('/todos', { title: 'd', parent_id: a.id, order: 4 })
  const ids = async (query: string) => {
    const answer = await api.get(`/todos?${query}`)
    t.equal(answer.statusCode, 200, `${query}: ${answer.body}`)
    return (answer.json() as Array<{ id: number }>).map((todo) => todo.id)
  }
  t.same(await ids(`list_id=${list.id}`), [b.id, c.id])
  t.same(await ids('list_id=null'), [a.id, d.id], 'the inbox')
  t.same(await ids('list_id=2147483648'), [], 'an id past int4 is simply not there')
  t.same(await ids(`parent_id=${b.id}`), [c.id])
  t.same(await ids('parent_id=null'), [a.id, b.id])
  t.same(await ids('label=z'), [b.id, c.id])
  t.same(await ids('label=x&label=y'), [a.id, b.id], 'any of the labels')
  t.same(await ids('priority=4'), [b.id])
  t.same(await ids('sort=-priority'), [b.id, a.id, d.id, c.id], 'descending mirrors ascending: ties by id, descending')
  t.same(await ids('sort=priority&limit=2'), [c.id, d.id])
  t.same(await ids(`list_id=null&parent_id=null&label=x&priority=2`), [a.id])
  for (const query of ['list_id=inbox', 'list_id=-1', 'list_id=01', 'parent_id=1.5', 'priority=9', `label=${'l'.repeat(61)}`, 'label=']) {
    expectProblem(t, await api.get(`/todos?${query}`), 400, { code: 'VALIDATION_FAILED', errors: [{ in: 'querystring' }] }, query)
  }
})
