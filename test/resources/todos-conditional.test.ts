import t from 'tap'
import { buildTestApp, expectProblem, sql } from '../helper.js'

t.test('If-None-Match with the current ETag gives 304 without a body', async (t) => {
  const { api } = await buildTestApp(t)
  const todo = await api.create('/todos', { title: 'cache me' })
  for (const header of ['"1"', 'W/"1"', '"7", "1"', '*']) {
    const response = await api.get(`/todos/${todo.id}`, { 'if-none-match': header })
    t.equal(response.statusCode, 304, header)
    t.equal(response.body, '', header)
    t.equal(response.headers.etag, '"1"')
    // RFC 9110 §8.6: a Content-Length on a 304 must be the 200's; with no body, none at all.
    t.equal(response.headers['content-length'], undefined, `${header}: no Content-Length`)
    t.equal(response.headers['content-type'], undefined, `${header}: no Content-Type`)
  }
  const deleted = await api.delete(`/todos/${(await api.create('/todos', { title: 'gone' })).id}`)
  t.equal(deleted.statusCode, 204)
  t.same([deleted.headers['content-length'], deleted.headers['content-type']], [undefined, undefined], '204: no Content-Length or Content-Type either')
  t.equal((await api.get(`/todos/${todo.id}`, { 'if-none-match': '"2"' })).statusCode, 200, 'another version: full answer')
  await api.patch(`/todos/${todo.id}`, { completed: true })
  const changed = await api.get(`/todos/${todo.id}`, { 'if-none-match': '"1"' })
  t.equal(changed.statusCode, 200, 'after a change the old ETag no longer matches')
  t.equal(changed.headers.etag, '"2"')
})

t.test('PATCH with the current ETag in If-Match applies; a stale one is 412 and changes nothing', async (t) => {
  const { db, api } = await buildTestApp(t)
  const todo = await api.create('/todos', { title: 'v1' })
  const ok = await api.patch(`/todos/${todo.id}`, { title: 'v2' }, { 'if-match': '"1"' })
  t.equal(ok.statusCode, 200)
  t.equal(ok.headers.etag, '"2"')

  const before = await sql(db, 'SELECT * FROM todos')
  const stale = await api.patch(`/todos/${todo.id}`, { title: 'lost update' }, { 'if-match': '"1"' })
  expectProblem(t, stale, 412, { status: 412, title: 'Precondition Failed', code: 'PRECONDITION_FAILED', detail: /has changed since the version in If-Match/ })
  t.same(await sql(db, 'SELECT * FROM todos'), before, 'nothing changed')

  for (const header of ['W/"2"', 'garbage', '""']) {
    t.equal((await api.patch(`/todos/${todo.id}`, { title: 'x' }, { 'if-match': header })).statusCode, 412, `${header} never matches`)
  }
  t.equal((await api.patch(`/todos/${todo.id}`, { title: 'v3' }, { 'if-match': '"9", "2"' })).statusCode, 200, 'any listed ETag may match')
  t.equal((await api.patch(`/todos/${todo.id}`, { title: 'v4' }, { 'if-match': '*' })).statusCode, 200, '* matches any version')
  const missing = await api.patch('/todos/999999', { title: 'x' }, { 'if-match': '*' })
  t.equal(missing.statusCode, 412, 'a missing todo fails If-Match, even *')
  t.match(missing.json(), { detail: 'todo 999999 does not exist, so If-Match cannot match' })
  t.equal((await api.patch(`/todos/${todo.id}`, { title: 'x' }, { 'if-match': '"9999999999"' })).statusCode, 412, 'beyond any version: no match, not a 500')
  t.equal((await api.patch(`/todos/${todo.id}`, { title: 'x' }, { 'if-match': '"04"' })).statusCode, 412, 'strong comparison: "04" is not "4"')
  t.equal((await api.patch(`/todos/${todo.id}`, {}, { 'if-match': '"1"' })).statusCode, 412, 'an empty patch still checks')
})

t.test('two clients editing the same todo: exactly one wins, the other gets 412', async (t) => {
  const { db, api } = await buildTestApp(t)
  for (let round = 0; round < 20; round++) {
    const todo = await api.create('/todos', { title: `race ${round}` })
    const etag = String((await api.get(`/todos/${todo.id}`)).headers.etag)
    const [alice, bob] = await Promise.all([
      api.patch(`/todos/${todo.id}`, { title: 'alice' }, { 'if-match': etag }),
      api.patch(`/todos/${todo.id}`, { title: 'bob' }, { 'if-match': etag })
    ])
    const statuses = [alice?.statusCode, bob?.statusCode].sort()
    t.same(statuses, [200, 412], `round ${round}`)
    const winner = alice?.statusCode === 200 ? 'alice' : 'bob'
    t.same(await sql(db, 'SELECT title, version FROM todos WHERE id = $1', [todo.id]), [{ title: winner, version: 2 }])
  }
})

t.test('DELETE honours If-Match', async (t) => {
  const { api } = await buildTestApp(t)
  const todo = await api.create('/todos', { title: 'careful' })
  await api.patch(`/todos/${todo.id}`, { completed: true })
  const stale = await api.delete(`/todos/${todo.id}`, { 'if-match': '"1"' })
  t.equal(stale.statusCode, 412)
  t.equal((await api.get(`/todos/${todo.id}`)).statusCode, 200, 'still there')
  t.equal((await api.delete(`/todos/${todo.id}`, { 'if-match': '"2"' })).statusCode, 204)
  t.equal((await api.delete(`/todos/${todo.id}`, { 'if-match': '"2"' })).statusCode, 412, 'gone: If-Match cannot match')
  t.equal((await api.delete(`/todos/${todo.id}`)).statusCode, 404, 'gone: plainly not found')
})

t.test('the ETag follows changes made outside the API too', async (t) => {
  const { db, api } = await buildTestApp(t)
  const todo = await api.create('/todos', { title: 'shared' })
  await sql(db, `UPDATE todos SET completed = true WHERE id = $1`, [todo.id])
  t.equal((await api.get(`/todos/${todo.id}`)).headers.etag, '"2"', 'the database trigger bumps the version')
  t.equal((await api.patch(`/todos/${todo.id}`, { title: 'x' }, { 'if-match': '"1"' })).statusCode, 412)
})
