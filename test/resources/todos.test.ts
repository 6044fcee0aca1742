import t, { type Test } from 'tap'
import { buildTestApp, expectProblem, sql } from '../helper.js'

const isoDate = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

async function setup(t: Test) {
  const { app, db, api } = await buildTestApp(t)
  /** The todos table as it is, to show that a rejected request changed nothing. */
  const snapshot = () => sql(db, 'SELECT * FROM todos ORDER BY id')
  return { app, db, api, snapshot }
}

t.test('POST creates a todo: 201, Location, ETag, the full representation', async (t) => {
  const { api, db } = await setup(t)
  const response = await api.post('/todos', { title: '  Walk the dog  ', due_date: '2026-12-24T18:00:00+01:00', order: 3 })
  t.equal(response.statusCode, 201)
  t.equal(response.headers['content-type'], 'application/json; charset=utf-8')
  const todo = response.json()
  t.match(todo, {
    id: Number,
    title: 'Walk the dog',
    description: null,
    completed: false,
    order: 3,
    due_date: '2026-12-24T17:00:00.000Z',
    url: `http://localhost:80/todos/${todo.id}`,
    created_at: isoDate,
    updated_at: isoDate
  })
  t.same(Object.keys(todo).sort(), ['completed', 'completed_at', 'created_at', 'description', 'due_date', 'id', 'labels', 'list_id', 'metadata', 'order', 'parent_id', 'priority', 'title', 'updated_at', 'url'])
  t.equal(response.headers.location, todo.url)
  t.equal(response.headers.etag, '"1"')
  t.same(await sql(db, 'SELECT title, completed FROM todos WHERE id = $1', [todo.id]), [{ title: 'Walk the dog', completed: false }], 'stored trimmed')
})

t.test('the url of a todo follows PUBLIC_BASE_URL, or the Host the client used', async (t) => {
  const { api } = await setup(t)
  // Host names without a dot: AUTH_MODE=local serves no DNS name without a token (plugins/auth.ts).
  const viaHost = await api.post('/todos', { title: 'a' }, { host: 'todos-test:8443', 'x-forwarded-proto': 'https' })
  t.equal(viaHost.json().url, `http://todos-test:8443/todos/${viaHost.json().id}`, 'X-Forwarded-* ignored unless TRUST_PROXY')

  const { api: proxied } = await buildTestApp(t, { env: { TRUST_PROXY: 'true' } })
  const behindProxy = await proxied.post('/todos', { title: 'b' }, { 'x-forwarded-host': 'api-example:8443', 'x-forwarded-proto': 'https' })
  t.equal(behindProxy.json().url, `https://api-example:8443/todos/${behindProxy.json().id}`)

  const { api: configured } = await buildTestApp(t, { env: { PUBLIC_BASE_URL: 'https://example.com/api' } })
  const fixed = await configured.post('/todos', { title: 'c' }, { host: 'evil-example' })
  t.equal(fixed.json().url, `https://example.com/api/todos/${fixed.json().id}`)
  t.equal(fixed.headers.location, fixed.json().url)
})

t.test('GET /todos/:id returns the todo; an absent one is a 404 problem', async (t) => {
  const { api } = await setup(t)
  const created = await api.create('/todos', { title: 'read me', description: 'details' })
  const response = await api.get(`/todos/${created.id}`)
  t.equal(response.statusCode, 200)
  t.same(response.json(), created)
  t.equal(response.headers.etag, '"1"')
  t.equal(response.headers['cache-control'], 'no-cache')

  const missing = await api.get('/todos/999999')
  expectProblem(t, missing, 404, { status: 404, code: 'NOT_FOUND', detail: 'todo 999999 does not exist' })
})

t.test('HEAD answers like GET without a body', async (t) => {
  const { app, api } = await setup(t)
  const created = await api.create('/todos', { title: 'headless' })
  const response = await app.inject({ method: 'HEAD', url: `/todos/${created.id}` })
  t.equal(response.statusCode, 200)
  t.equal(response.headers.etag, '"1"')
  t.equal(response.body, '')
})

t.test('ids that are not positive 32-bit integers are a 400, never a 500', async (t) => {
  const { api, snapshot } = await setup(t)
  await api.create('/todos', { title: 'bystander' })
  const before = await snapshot()
  for (const id of ['abc', '0', '-1', '1.5', '99999999999', '%20', 'null', '1;DROP TABLE todos']) {
    for (const response of [await api.get(`/todos/${id}`), await api.patch(`/todos/${id}`, { title: 'x' }), await api.delete(`/todos/${id}`)]) {
      t.equal(response.statusCode, 400, `${response.raw.req.method} /todos/${id}`)
      t.match(response.json(), { code: 'VALIDATION_FAILED', errors: [{ in: 'params', field: 'id' }] })
    }
  }
  // An id is decimal digits: another notation of a number is a 400, never a lookup.
  for (const id of ['1e3', '0x10', '1.0', '+1', ' 1']) t.equal((await api.get(`/todos/${encodeURIComponent(id)}`)).statusCode, 400, `/todos/${id}`)
  t.same(await snapshot(), before)
})

t.test('PATCH changes only the fields given; null clears an optional field', async (t) => {
  const { api } = await setup(t)
  const created = await api.create('/todos', { title: 'initial', description: 'keep me', order: 1, due_date: '2026-01-01T00:00:00Z' })
  const patched = await api.patch(`/todos/${created.id}`, { completed: true, order: null, due_date: null })
  t.equal(patched.statusCode, 200)
  t.match(patched.json(), { id: created.id, title: 'initial', description: 'keep me', completed: true, order: null, due_date: null })
  t.equal(patched.headers.etag, '"2"')
  t.ok(patched.json().updated_at >= String(created.updated_at), 'updated_at moves forward')
  t.equal(patched.json().created_at, created.created_at, 'created_at stays')

  const again = await api.get(`/todos/${created.id}`)
  t.same(again.json(), patched.json(), 'the change is stored')
})

t.test('PATCH accepts application/merge-patch+json', async (t) => {
  const { app, api } = await setup(t)
  const created = await api.create('/todos', { title: 'merge me', description: 'old' })
  const response = await app.inject({
    method: 'PATCH',
    url: `/todos/${created.id}`,
    headers: { 'content-type': 'application/merge-patch+json' },
    payload: '{"description": null, "title": "merged"}'
  })
  t.equal(response.statusCode, 200)
  t.match(response.json(), { title: 'merged', description: null })
})

t.test('an empty PATCH changes nothing, not even the ETag', async (t) => {
  const { api } = await setup(t)
  const created = await api.create('/todos', { title: 'still' })
  const response = await api.patch(`/todos/${created.id}`, {})
  t.equal(response.statusCode, 200)
  t.equal(response.headers.etag, '"1"')
  t.same(response.json(), created)
  const sameValues = await api.patch(`/todos/${created.id}`, { title: 'still' })
  t.equal(sameValues.headers.etag, '"1"', 'writing the same values is not a change')
  t.same((await api.patch('/todos/999999', {})).statusCode, 404)
})

t.test('DELETE /todos/:id answers 204, then the todo is gone', async (t) => {
  const { api } = await setup(t)
  const created = await api.create('/todos', { title: 'doomed' })
  const response = await api.delete(`/todos/${created.id}`)
  t.equal(response.statusCode, 204)
  t.equal(response.body, '')
  t.equal((await api.get(`/todos/${created.id}`)).statusCode, 404)
  t.equal((await api.delete(`/todos/${created.id}`)).statusCode, 404)
})

t.test('DELETE /todos deletes every todo', async (t) => {
  const { api, db } = await setup(t)
  for (const title of ['a', 'b', 'c']) await api.create('/todos', { title })
  // Browsers' XHR helpers send a JSON content type even without a body.
  const response = await api.delete('/todos', { 'content-type': 'application/json' })
  t.equal(response.statusCode, 204)
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM todos'), [{ n: 0 }])
  t.same((await api.get('/todos')).json(), [])
})

t.test('validation: every bad field is named, with a 400 problem, and nothing is written', async (t) => {
  const { api, snapshot } = await setup(t)
  const existing = await api.create('/todos', { title: 'existing', order: 5 })
  const before = await snapshot()

  const cases: Array<{ body: unknown; errors: Array<{ field: string; message: RegExp | string }>; patch?: boolean }> = [
    { body: {}, errors: [{ field: 'title', message: 'is required' }] },
    { body: { title: '' }, errors: [{ field: 'title', message: 'must not be blank' }] },
    { body: { title: ' \t\n ' }, errors: [{ field: 'title', message: 'must not be blank' }] },
    { body: { title: 'x'.repeat(501) }, errors: [{ field: 'title', message: /more than 500/ }] },
    { body: { title: 'ok', completed: 'true' }, errors: [{ field: 'completed', message: 'must be boolean' }] },
    { body: { title: 'ok', order: '5' }, errors: [{ field: 'order', message: /must be integer/ }] },
    { body: { title: 'ok', order: 1.5 }, errors: [{ field: 'order', message: /must be integer/ }] },
    { body: { title: 'ok', order: 2147483648 }, errors: [{ field: 'order', message: /must be <= 2147483647/ }] },
    { body: { title: 'ok', due_date: 'tomorrow' }, errors: [{ field: 'due_date', message: /must be an RFC 3339 date-time/ }] },
    { body: { title: 'ok', due_date: '2026-12-24T18:00:00' }, errors: [{ field: 'due_date', message: /date-time/ }] },
    { body: { title: 'ok', due_date: '0001-01-01T00:30:00+01:00' }, errors: [{ field: 'due_date', message: 'must have a year from 1000 to 9999' }] },
    { body: { title: 'ok', description: 'y'.repeat(10_001) }, errors: [{ field: 'description', message: /more than 10000/ }] },
    { body: { title: 'ok', id: 7, url: 'x' }, errors: [{ field: 'id', message: 'is not a known field' }, { field: 'url', message: 'is not a known field' }] },
    { body: { title: 5, completed: 'no', importance: 'high' }, errors: [{ field: 'title', message: 'must be string' }, { field: 'completed', message: 'must be boolean' }, { field: 'importance', message: 'is not a known field' }] },
    { body: { title: null }, errors: [{ field: 'title', message: 'must be string' }], patch: true },
    { body: { completed: null }, errors: [{ field: 'completed', message: 'must be boolean' }], patch: true },
    { body: { titel: 'typo' }, errors: [{ field: 'titel', message: 'is not a known field' }], patch: true }
  ]
  for (const { body, errors, patch } of cases) {
    const response = patch ? await api.patch(`/todos/${existing.id}`, body) : await api.post('/todos', body)
    const label = `${patch ? 'PATCH' : 'POST'} ${JSON.stringify(body).slice(0, 60)}`
    const problem = expectProblem(t, response, 400, { type: 'about:blank', title: 'Bad Request', status: 400, code: 'VALIDATION_FAILED', detail: String }, label)
    t.equal(problem.errors?.length, errors.length, `${label}: ${JSON.stringify(problem.errors)}`)
    for (const expected of errors) {
      const found = problem.errors?.find((error: { field: string }) => error.field === expected.field)
      t.match(found, { in: 'body', field: expected.field, message: expected.message }, `${label}: ${expected.field}`)
    }
  }

  for (const raw of ['[]', '"title"', 'null', '{"title": "x",}', '{"__proto__": {"x": 1}, "title": "p"}']) {
    const response = await api.post('/todos', raw)
    expectProblem(t, response, 400, {}, raw)
  }
  t.same(await snapshot(), before, 'nothing in the database changed')
})

t.test('values only the database can reject are 400s too, not 500s', async (t) => {
  const { api, snapshot } = await setup(t)
  const before = await snapshot()
  for (const body of [{ title: 'nul \u0000 byte' }]) {
    const response = await api.post('/todos', body)
    t.equal(response.statusCode, 400, JSON.stringify(body))
    t.match(response.json(), { code: /INVALID_VALUE|VALIDATION_FAILED/ })
    t.notMatch(response.body, /INSERT|SELECT|todos_/, 'no SQL in the answer')
  }
  t.same(await snapshot(), before)
})

t.test('the title limit applies after trimming', async (t) => {
  const { api } = await setup(t)
  const padded = await api.post('/todos', { title: `  ${'a'.repeat(500)}  ` })
  t.equal(padded.statusCode, 201, '500 characters inside spaces')
  t.equal(padded.json().title.length, 500)
  t.equal((await api.post('/todos', { title: ` ${'a'.repeat(501)} ` })).statusCode, 400)
  const patched = await api.patch(`/todos/${padded.json().id}`, { title: '\tnew title\n' })
  t.equal(patched.json().title, 'new title')
})
