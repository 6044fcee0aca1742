import t from 'tap'
import { expectProblem, listeningTestApp, sql, usersWithTokens } from '../helper.js'

t.test('lists over HTTP: create with defaults, read, 304, conditional update and delete', async (t) => {
  const { http, db } = await listeningTestApp(t)
  const api = http()
  const created = await api.post('/lists', { title: '  Groceries  ' })
  t.equal(created.statusCode, 201)
  const list = created.json()
  t.match(list, { id: Number, title: 'Groceries', colour: 'grey', archived: false, position: null, created_at: String, updated_at: String })
  t.same(Object.keys(list), ['id', 'title', 'colour', 'archived', 'position', 'url', 'created_at', 'updated_at'], 'the schema order')
  t.equal(created.headers.location, list.url)
  t.match(list.url, new RegExp(`^http://127\\.0\\.0\\.1:\\d+/lists/${list.id}$`))
  t.equal(created.headers.etag, '"1"')

  const got = await api.get(`/lists/${list.id}`)
  t.same(got.json(), list)
  t.equal((await api.get(`/lists/${list.id}`, { 'if-none-match': '"1"' })).statusCode, 304)
  const changed = await api.patch(`/lists/${list.id}`, { colour: 'teal', position: 3, archived: true }, { 'if-match': '"1"' })
  t.equal(changed.statusCode, 200)
  t.match(changed.json(), { colour: 'teal', position: 3, archived: true })
  t.equal(changed.headers.etag, '"2"')
  expectProblem(t, await api.patch(`/lists/${list.id}`, { title: 'stale' }, { 'if-match': '"1"' }), 412, { code: 'PRECONDITION_FAILED' })
  expectProblem(t, await api.delete(`/lists/${list.id}`, { 'if-match': '"1"' }), 412, { code: 'PRECONDITION_FAILED' })
  t.equal((await api.delete(`/lists/${list.id}`, { 'if-match': '"2"' })).statusCode, 204)
  t.equal((await api.get(`/lists/${list.id}`)).statusCode, 404)
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM lists'), [{ n: 0 }])
})

t.test('a list is validated field by field, and a refused one changes nothing', async (t) => {
  const { http, db } = await listeningTestApp(t)
  const api = http()
  const bad: Array<[object, string]> = [
    [{ title: '   ' }, 'title'],
    [{ title: 'x'.repeat(201) }, 'title'],
    [{ title: 'A', colour: 'magenta' }, 'colour'],
    [{ title: 'A', colour: 'RED' }, 'colour'],
    [{ title: 'A', archived: 'yes' }, 'archived'],
    [{ title: 'A', position: 2147483648 }, 'position'],
    [{ title: 'A', owner_id: 2 }, 'owner_id'],
    [{}, 'title']
  ]
  for (const [body, field] of bad) {
    expectProblem(t, await api.post('/lists', body), 400, { code: 'VALIDATION_FAILED', errors: [{ in: 'body', field }] }, JSON.stringify(body).slice(0, 60))
  }
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM lists'), [{ n: 0 }])
  t.match((await api.create('/lists', { title: 'Red', colour: 'red' })).colour, 'red')
})

t.test('filters (archived, q), sorts (position with the unpositioned last, title, created_at) and pages', async (t) => {
  const { http } = await listeningTestApp(t)
  const api = http()
  const make = (title: string, extra: object = {}) => api.create('/lists', { title, ...extra })
  const home = await make('Home', { position: 2 })
  const work = await make('Work', { position: 1 })
  const someday = await make('Someday', { archived: true })
  const shop = await make('Shopping', { position: 3, archived: true })
  const ids = async (query: string) => ((await api.get(`/lists?${query}`)).json() as Array<{ id: number }>).map((list) => list.id)
  t.same(await ids(''), [work.id, home.id, shop.id, someday.id], 'by position, lists without one last')
  t.same(await ids('sort=-position'), [someday.id, shop.id, home.id, work.id])
  t.same(await ids('sort=title'), [home.id, shop.id, someday.id, work.id])
  t.same(await ids('archived=false'), [work.id, home.id])
  t.same(await ids('archived=true&sort=title'), [shop.id, someday.id])
  t.same(await ids('q=OM'), [home.id, someday.id])
  const first = await api.get('/lists?limit=3')
  t.equal((first.json() as unknown[]).length, 3)
  const next = /<([^>]+)>; rel="next"/.exec(first.headers.link ?? '')?.[1] ?? ''
  t.same(((await api.get(new URL(next).pathname + new URL(next).search)).json() as Array<{ id: number }>).map((list) => list.id), [someday.id])
  expectProblem(t, await api.get('/lists?sort=colour'), 400, { code: 'VALIDATION_FAILED' })
})

t.test("another user's list is not there for anyone else: not read, changed, deleted, listed, or used by a todo", async (t) => {
  const { http, db } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada, bob } = await usersWithTokens(db, ['ada', 'bob'])
  const asAda = http(ada.headers)
  const asBob = http(bob.headers)
  const list = await asAda.create('/lists', { title: "Ada's" })
  const todo = await asAda.create('/todos', { title: 'in it', list_id: list.id })
  const before = await sql(db, 'SELECT * FROM lists ORDER BY id')
  const missing = 2147483647
  for (const id of [list.id, missing]) {
    expectProblem(t, await asBob.get(`/lists/${id}`), 404, { code: 'NOT_FOUND', detail: `list ${id} does not exist` })
    expectProblem(t, await asBob.patch(`/lists/${id}`, { title: 'mine' }), 404, { code: 'NOT_FOUND' })
    expectProblem(t, await asBob.delete(`/lists/${id}`), 404, { code: 'NOT_FOUND' })
  }
  t.same((await asBob.get('/lists')).json(), [])
  // The same answer, byte for byte but the request id, for Ada's list and for no list at all.
  const answers = []
  for (const id of [list.id, missing]) {
    const answer = await asBob.post('/todos', { title: 'sneaky', list_id: id })
    answers.push({ ...answer.json(), request_id: undefined, instance: undefined })
    expectProblem(t, answer, 422, { code: 'LIST_NOT_FOUND', errors: [{ in: 'body', field: 'list_id' }] })
  }
  t.same(answers[0], answers[1], 'another user’s list id and a nonexistent one get the same answer')
  const bobs = await asBob.create('/todos', { title: 'mine' })
  expectProblem(t, await asBob.patch(`/todos/${bobs.id}`, { list_id: list.id }), 422, { code: 'LIST_NOT_FOUND' })
  t.same(await sql(db, 'SELECT * FROM lists ORDER BY id'), before)
  t.same(await sql(db, 'SELECT id, list_id FROM todos ORDER BY id'), [{ id: todo.id, list_id: list.id }, { id: bobs.id, list_id: null }])
})

t.test('deleting a list deletes its todos and their subtasks in one statement; If-Match guards it like any delete', async (t) => {
  const { http, db } = await listeningTestApp(t)
  const api = http()
  const list = await api.create('/lists', { title: 'Move house' })
  const other = await api.create('/lists', { title: 'Keep' })
  const parent = await api.create('/todos', { title: 'Pack', list_id: list.id })
  await api.create('/todos', { title: 'Kitchen', parent_id: parent.id })
  await api.create('/todos', { title: 'Books', list_id: list.id })
  const kept = await api.create('/todos', { title: 'Stay', list_id: other.id })
  const inbox = await api.create('/todos', { title: 'Inbox' })
  expectProblem(t, await api.delete(`/lists/${list.id}`, { 'if-match': '"9"' }), 412)
  t.equal((await sql(db, 'SELECT count(*)::int AS n FROM todos'))[0]?.n, 5, 'a refused delete deletes nothing')
  t.equal((await api.delete(`/lists/${list.id}`, { 'if-match': '"1"' })).statusCode, 204)
  t.same(await sql(db, 'SELECT id FROM todos ORDER BY id'), [{ id: kept.id }, { id: inbox.id }])
})
