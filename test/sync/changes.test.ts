import pg from 'pg'
import t from 'tap'
import { migrationFiles, runMigrations } from '../../src/db/migrate.js'
import { expectProblem, freshDatabase, listeningTestApp, sql, usersWithTokens } from '../helper.js'
import type { HttpAnswer } from '../support/http.js'
import type {} from '../../src/sync/plugin.js'

type Change = { type: string; id: number; deleted: boolean; data: Record<string, unknown> | null }
type Page = { changes: Change[]; cursor: string; more: boolean }

/** Follows `cursor` while `more`: every change of a sync, and the cursor to keep. */
async function syncAll(get: (url: string) => Promise<HttpAnswer>, cursor?: string, limit = 100) {
  const changes: Change[] = []
  const pages: Change[][] = []
  for (;;) {
    const answer = await get(`/changes?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`)
    if (answer.statusCode !== 200) throw new Error(`GET /changes: ${answer.statusCode} ${answer.body}`)
    const page = answer.json() as Page
    changes.push(...page.changes)
    pages.push(page.changes)
    cursor = page.cursor
    if (!page.more) return { changes, cursor, pages }
  }
}
const keys = (changes: Change[]) => changes.map((change) => `${change.type} ${change.id}${change.deleted ? ' deleted' : ''}`)

t.test('a sync from scratch, then deltas: creates, updates, deletes and cascades, only the caller\'s, each as GET shows it', async (t) => {
  const { http, db } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada, bob } = await usersWithTokens(db, ['ada', 'bob'])
  const [asAda, asBob] = [http(ada.headers), http(bob.headers)]
  const list = await asAda.create('/lists', { title: 'Home' })
  const todo = await asAda.create('/todos', { title: 'dishes', list_id: list.id, labels: ['home'] })
  const sub = await asAda.create('/todos', { title: 'dry', parent_id: todo.id, list_id: list.id })
  const cat = await asAda.create('/cats', { name: 'Tom', price: 10 })
  await asBob.create('/todos', { title: "bob's" })

  const first = await syncAll((url) => asAda.get(url), undefined, 2)
  t.same(keys(first.changes).sort(), [`cat ${cat.id}`, `list ${list.id}`, `todo ${sub.id}`, `todo ${todo.id}`].sort(), "the whole state, ada's only")
  t.ok(first.pages.length >= 2 && first.pages.every((page) => page.length <= 2), 'in pages of the limit')
  t.same(first.changes.find((change) => change.type === 'todo' && change.id === todo.id)?.data, (await asAda.get(`/todos/${todo.id}`)).json(), 'data is the item as GET returns it')
  t.same((await syncAll((url) => asAda.get(url), first.cursor)).changes, [], 'nothing changed since')
  t.equal((await asAda.patch(`/todos/${todo.id}`, { title: 'dishes' })).statusCode, 200)
  t.same((await syncAll((url) => asAda.get(url), first.cursor)).changes, [], 'a PATCH that changes nothing is no change')

  await asAda.patch(`/todos/${todo.id}`, { completed: true })
  await asAda.patch(`/todos/${todo.id}`, { title: 'dishes, done' })
  await asBob.create('/todos', { title: "bob's second" })
  await asAda.delete(`/cats/${cat.id}`)
  const second = await syncAll((url) => asAda.get(url), first.cursor)
  t.same(keys(second.changes), [`todo ${todo.id}`, `cat ${cat.id} deleted`], 'each item once, latest state, in the order of its last change')
  t.match(second.changes[0]?.data, { title: 'dishes, done', completed: true, completed_at: String })
  t.same(second.changes[1], { type: 'cat', id: cat.id, deleted: true, data: null })

  // Deleting the list deletes its todos in the same statement: each leaves a tombstone.
  await asAda.delete(`/lists/${list.id}`)
  const third = await syncAll((url) => asAda.get(url), second.cursor)
  t.same(keys(third.changes).sort(), [`list ${list.id} deleted`, `todo ${sub.id} deleted`, `todo ${todo.id} deleted`].sort())
  t.equal((await asAda.get(`/todos/${todo.id}`)).statusCode, 404, 'a tombstone is seen by no other read')

  const bobs = await syncAll((url) => asBob.get(url))
  t.same(bobs.changes.map((change) => change.data?.title), ["bob's", "bob's second"], "bob sees his own, nothing of ada's")
})

t.test('a write whose transaction began before a cursor was issued and committed after it still arrives after it', async (t) => {
  const { http, db } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada } = await usersWithTokens(db, ['ada'])
  const api = http(ada.headers)
  const start = await syncAll((url) => api.get(url))

  const slow = new pg.Client({ connectionString: db })
  await slow.connect()
  t.teardown(() => slow.end())
  await slow.query('BEGIN')
  const [held] = (await slow.query<{ id: number }>("INSERT INTO todos (owner_id, title) VALUES ($1, 'began first, committed last') RETURNING id", [ada.id])).rows
  const later = await api.create('/todos', { title: 'began later, committed first' })

  const middle = await syncAll((url) => api.get(url), start.cursor)
  t.same(keys(middle.changes), [`todo ${later.id}`], 'the committed write; the open one is not visible yet')
  await slow.query('COMMIT')
  const after = await syncAll((url) => api.get(url), middle.cursor)
  t.same(keys(after.changes), [`todo ${held?.id}`], 'the late commit arrives after the cursor issued while it was open, and nothing twice')
})

t.test('paging through a window while writes go on: every item once, none skipped', async (t) => {
  const { http, db } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada } = await usersWithTokens(db, ['ada'])
  const api = http(ada.headers)
  const start = await syncAll((url) => api.get(url))
  await sql(db, "INSERT INTO todos (owner_id, title) SELECT $1, 'bulk ' || i FROM generate_series(1, 250) i", [ada.id])
  const seen: Change[] = []
  let cursor = start.cursor
  for (let page = 0; ; page++) {
    const body = (await api.get(`/changes?limit=100&cursor=${cursor}`)).json() as Page
    seen.push(...body.changes)
    cursor = body.cursor
    // A write between pages belongs to the next window, not this one.
    if (page === 0) await api.create('/todos', { title: 'during the paging' })
    if (!body.more) break
  }
  t.equal(seen.length, 250, 'the window: the 250 rows, in three pages')
  t.equal(new Set(seen.map((change) => change.id)).size, 250, 'none twice')
  const next = await syncAll((url) => api.get(url), cursor)
  t.same(next.changes.map((change) => change.data?.title), ['during the paging'], 'the write made while paging comes next')
})

t.test("a cursor that is not the caller's, expired or made up: 410 or 400, and nothing of anyone's", async (t) => {
  const { http, db } = await listeningTestApp(t, { env: { AUTH_MODE: 'required', SYNC_RETENTION_DAYS: '0.00002' } })
  const { ada, bob } = await usersWithTokens(db, ['ada', 'bob'])
  const [asAda, asBob] = [http(ada.headers), http(bob.headers)]
  await asAda.create('/todos', { title: 'secret' })
  const { cursor } = await syncAll((url) => asAda.get(url))
  expectProblem(t, await asBob.get(`/changes?cursor=${cursor}`), 410, { code: 'CURSOR_EXPIRED' }, "ada's cursor, used by bob")
  for (const bad of ['nonsense', Buffer.from('{"o":1}').toString('base64url'), Buffer.from(JSON.stringify({ o: 1, at: 1, from: "1:2:3'; DROP TABLE todos" })).toString('base64url')]) {
    expectProblem(t, await asAda.get(`/changes?cursor=${bad}`), 400, { code: 'INVALID_CURSOR' }, bad.slice(0, 12))
  }
  const forged = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as { at: number }
  const future = Buffer.from(JSON.stringify({ ...forged, at: forged.at + 86_400_000 })).toString('base64url')
  expectProblem(t, await asAda.get(`/changes?cursor=${future}`), 410, { code: 'CURSOR_EXPIRED' }, 'issued in the future: made up to dodge the retention')
  expectProblem(t, await http().get('/changes'), 401, { code: 'UNAUTHENTICATED' }, 'no token')
  // SYNC_RETENTION_DAYS=0.00002: under two seconds.
  await new Promise((resolve) => setTimeout(resolve, 2000))
  expectProblem(t, await asAda.get(`/changes?cursor=${cursor}`), 410, { code: 'CURSOR_EXPIRED', detail: /sync again from the start/ }, 'older than the retention')
})

t.test('tombstones older than the retention are deleted by the service, in batches', async (t) => {
  const { app, db } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada } = await usersWithTokens(db, ['ada'])
  await sql(db, "INSERT INTO change_log (owner_id, kind, item_id, deleted, changed_at) SELECT $1, 'todo', i, true, now() - interval '31 days' FROM generate_series(1, 2500) i", [ada.id])
  await sql(db, "INSERT INTO change_log (owner_id, kind, item_id, deleted, changed_at) VALUES ($1, 'todo', 9999, false, now() - interval '31 days')", [ada.id])
  await sql(db, "INSERT INTO change_log (owner_id, kind, item_id, deleted) VALUES ($1, 'todo', 10000, true)", [ada.id])
  t.equal(await app.changeFeed.reap(), 2500)
  t.same(await sql(db, 'SELECT item_id FROM change_log ORDER BY item_id'), [{ item_id: 9999 }, { item_id: 10000 }], "a recent tombstone stays, and a live item's row always does")
})

t.test('migration 0012 keeps each item\'s latest change of a log with a row per change', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const files = await migrationFiles()
  const before = files.findIndex((file) => file.name.startsWith('0012_'))
  await runMigrations(db, { count: before })
  const [ada] = await sql<{ id: number }>(db, "INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada') RETURNING id")
  const [{ id } = { id: 0 }] = await sql<{ id: number }>(db, "INSERT INTO todos (owner_id, title) VALUES ($1, 'first') RETURNING id", [ada?.id])
  await sql(db, "UPDATE todos SET title = 'second' WHERE id = $1", [id])
  const [gone] = await sql<{ id: number }>(db, "INSERT INTO todos (owner_id, title) VALUES ($1, 'gone') RETURNING id", [ada?.id])
  await sql(db, 'DELETE FROM todos WHERE id = $1', [gone?.id])
  t.same(await sql(db, 'SELECT count(*)::int AS n FROM changes'), [{ n: 4 }], 'four changes logged before 0012')
  const latest = (item: number | undefined) => sql<{ xid: string }>(db, 'SELECT xid::text FROM changes WHERE item_id = $1 ORDER BY seq DESC LIMIT 1', [item])
  const [[last], [deletion]] = [await latest(id), await latest(gone?.id)]
  t.same(await runMigrations(db, { count: 1 }), [files[before]?.name])
  t.same(
    await sql(db, 'SELECT item_id, deleted, xid::text FROM change_log ORDER BY item_id'),
    [{ item_id: id, deleted: false, xid: last?.xid }, { item_id: gone?.id, deleted: true, xid: deletion?.xid }],
    "each item once, with its latest change's transaction: the deleted one as a tombstone"
  )
})
