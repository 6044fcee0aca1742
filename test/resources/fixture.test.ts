/**
 * Adding a resource is one migration and one folder: a resource the engine has never seen
 * (test/fixtures/projects/, with a jsonb column, a text[] column, a float and a nullable
 * timestamp) is served, batched, documented and seeded without a change to the engine.
 */
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { seedDatabase } from '../../src/dev/seed.js'
import { loadResources } from '../../src/resources/index.js'
import projects from '../fixtures/projects/index.js'
import { buildTestApp, expectProblem, freshDatabase, sql } from '../helper.js'
import { turnClients } from '../support/http.js'

const up = (await readFile(new URL('../fixtures/projects.sql', import.meta.url), 'utf8')).split('-- Down Migration')[0] ?? ''
const resources = [...(await loadResources()), projects]

async function setup(t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}) {
  const db = await freshDatabase(t)
  await sql(db, up)
  return buildTestApp(t, { connectionString: db, resources, env })
}

t.test('create, read, list, change and delete a resource with JSON, array and nullable columns', async (t) => {
  const { api, db } = await setup(t)
  const settings = { beds: 3, soil: { ph: 6.5, notes: ['loam', 'clay'] }, 'key with "quotes"': null, empty: {}, list: [1, 'two', { three: 3 }] }
  const created = await api.post('/projects', { name: '  Garden ', settings, tags: ['outdoor', 'spring'], budget: 120.5, archived_at: null })
  t.equal(created.statusCode, 201, created.body)
  const project = created.json() as Record<string, unknown> & { id: number; url: string }
  t.match(project, { name: 'Garden', tags: ['outdoor', 'spring'], budget: 120.5, archived_at: null, url: /\/projects\/\d+$/ })
  t.same(project.settings, settings, 'the JSON comes back as it was sent')
  t.same(Object.keys(project), ['id', 'name', 'settings', 'tags', 'budget', 'archived_at', 'url', 'created_at', 'updated_at'], "in the item schema's order")
  const [stored] = await sql<{ settings: unknown; tags: string[] }>(db, 'SELECT settings, tags FROM projects')
  t.same(stored, { settings, tags: ['outdoor', 'spring'] }, 'stored as jsonb and text[]')

  const read = await api.get(`/projects/${project.id}`)
  t.equal(read.body, created.body, 'GET answers the same bytes')
  const patched = await api.patch(`/projects/${project.id}`, { settings: [1, 2], tags: ['indoor'], archived_at: '2026-03-01T12:00:00+02:00', budget: null }, { 'if-match': '"1"' })
  expectProblem(t, patched, 400, { errors: [{ field: 'settings' }] }, 'an array where an object belongs')
  const changed = await api.patch(`/projects/${project.id}`, { settings: { a: [] }, tags: ['indoor'], archived_at: '2026-03-01T12:00:00+02:00', budget: null }, { 'if-match': '"1"' })
  t.equal(changed.statusCode, 200, changed.body)
  t.match(changed.json(), { settings: { a: [] }, tags: ['indoor'], archived_at: '2026-03-01T10:00:00.000Z', budget: null })
  t.equal(changed.headers.etag, '"2"')

  await api.post('/projects', { name: 'Attic', tags: ['indoor', 'dusty'] })
  const indoor = await api.get('/projects?tag=indoor&sort=-name')
  t.same((indoor.json() as Array<{ name: string }>).map((item) => item.name), ['Garden', 'Attic'], 'a filter the definition writes, and a sort')
  t.equal((await api.delete(`/projects/${project.id}`, { 'if-match': '"2"' })).statusCode, 204)
  t.equal((await api.get(`/projects/${project.id}`)).statusCode, 404)
})

t.test('creates and reads of one turn are batched for it too', async (t) => {
  // One pooled connection: its prepared statements are every statement the app ran.
  const { app } = await setup(t, { DATABASE_POOL_MAX: '1' })
  // Over real HTTP: requests whose bytes one poll of the sockets reads are one turn. Twenty
  // connections are opened and used once first, as under load (and the caller's quota is
  // learned): the creates, then the reads, are then each written on them in one loop.
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const clients = await turnClients(port, 20)
  t.teardown(() => clients.close())
  await clients.send(Array.from({ length: 20 }, () => ({ method: 'GET', path: '/projects' })))
  const created = await clients.send(
    Array.from({ length: 20 }, (_, i) => ({
      method: 'POST',
      path: '/projects',
      body: { name: `p${i}`, settings: { i }, tags: [`t${i}`, 'all'], archived_at: i % 2 ? null : '2026-01-01T00:00:00Z' }
    }))
  )
  t.same(created.map((response) => response.status), new Array(20).fill(201))
  const items = created.map((response) => JSON.parse(response.body) as { id: number; settings: unknown; tags: unknown })
  t.same(items.map((item) => item.settings), Array.from({ length: 20 }, (_, i) => ({ i })), 'each got its own row back')
  t.same(items.map((item) => item.tags), Array.from({ length: 20 }, (_, i) => [`t${i}`, 'all']))
  const read = await clients.send(items.map((item) => ({ method: 'GET', path: `/projects/${item.id}` })))
  t.same(read.map((response) => response.body), created.map((response) => response.body), 'and reads them back byte for byte')
  const statements = (await app.pg.pool.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements')).rows.map((row) => row.statement)
  t.ok(statements.some((text) => /unnest\(.*INSERT INTO "projects"/s.test(text)), `the creates went as one batched INSERT: ${statements.filter((text) => text.includes('INSERT')).join(' / ')}`)
  t.ok(statements.some((text) => /unnest\(.*JOIN "projects" t ON t\.id = r\.id/s.test(text)), 'the reads as one batched SELECT')
})

t.test('listed in the docs and the root document, and seeded', async (t) => {
  const { app, db } = await setup(t)
  const openapi = (await app.inject('/docs/json')).json() as { tags: Array<{ name: string }>; paths: Record<string, unknown> }
  t.ok(openapi.tags.some((tag) => tag.name === 'projects'), 'a docs tag')
  t.ok('/projects/{id}' in openapi.paths && '/projects' in openapi.paths, 'and its paths')
  t.match((await app.inject('/')).json(), { links: { projects: { href: /\/projects$/ } } })
  const seeded = await seedDatabase(db, resources)
  t.same(seeded.projects, { added: 2, total: 2 })
  t.same(await sql(db, "SELECT name, settings, tags, budget FROM projects ORDER BY name"), [
    { name: 'Garden', settings: { beds: 3, soil: { ph: 6.5 } }, tags: ['outdoor'], budget: 120.5 },
    { name: 'Kitchen', settings: {}, tags: [], budget: null }
  ])
  t.same((await seedDatabase(db, resources)).projects, { added: 0, total: 2 }, 'once')
})
