import t, { type Test } from 'tap'
import { buildTestApp, expectProblem, sql } from '../helper.js'
import { walk } from '../support/http.js'

async function setup(t: Test) {
  const { app, db, api } = await buildTestApp(t)
  return { app, db, api, snapshot: () => sql(db, 'SELECT * FROM cats ORDER BY id') }
}

t.test("the tutorial's cat: POST answers 201 with Location and ETag", async (t) => {
  const { api, db } = await setup(t)
  const response = await api.post('/cats', { name: 'catty mcCatFace', price: 5000, breed: 'bengal' })
  t.equal(response.statusCode, 201)
  const cat = response.json()
  t.match(cat, { id: Number, name: 'catty mcCatFace', breed: 'bengal', price: 5000, url: `http://localhost:80/cats/${cat.id}`, created_at: String, updated_at: String })
  t.same(Object.keys(cat).sort(), ['breed', 'created_at', 'id', 'name', 'price', 'updated_at', 'url'])
  t.equal(response.headers.location, cat.url)
  t.equal(response.headers.etag, '"1"')
  t.same(await sql(db, 'SELECT name, breed, price FROM cats'), [{ name: 'catty mcCatFace', breed: 'bengal', price: 5000 }])
  const trimmed = await api.create('/cats', { name: '  Tom  ', breed: ' tabby ', price: 0 })
  t.match(trimmed, { name: 'Tom', breed: 'tabby', price: 0 })
  t.match(await api.create('/cats', { name: 'Stray', price: 1 }), { breed: null }, 'breed is optional')
})

t.test('GET, 304, PATCH (a new price), If-Match 412, DELETE', async (t) => {
  const { api, snapshot } = await setup(t)
  const cat = await api.create('/cats', { name: 'Felix', price: 5000, breed: 'persian' })
  const got = await api.get(`/cats/${cat.id}`)
  t.equal(got.statusCode, 200)
  t.same(got.json(), cat)
  t.equal((await api.get(`/cats/${cat.id}`, { 'if-none-match': '"1"' })).statusCode, 304)

  const cheaper = await api.patch(`/cats/${cat.id}`, { price: 4500 }, { 'if-match': '"1"' })
  t.equal(cheaper.statusCode, 200)
  t.match(cheaper.json(), { name: 'Felix', breed: 'persian', price: 4500 })
  t.equal(cheaper.headers.etag, '"2"')
  t.match((await api.patch(`/cats/${cat.id}`, { breed: null })).json(), { breed: null, price: 4500 }, 'null clears the breed')

  const before = await snapshot()
  const stale = await api.patch(`/cats/${cat.id}`, { price: 1 }, { 'if-match': '"1"' })
  t.equal(stale.statusCode, 412)
  t.match(stale.json(), { code: 'PRECONDITION_FAILED', detail: /cat \d+ has changed/ })
  t.equal((await api.delete(`/cats/${cat.id}`, { 'if-match': '"1"' })).statusCode, 412)
  t.same(await snapshot(), before)

  t.equal((await api.delete(`/cats/${cat.id}`)).statusCode, 204)
  t.equal((await api.get(`/cats/${cat.id}`)).statusCode, 404)
  t.match((await api.patch(`/cats/${cat.id}`, { price: 1 })).json(), { status: 404, detail: `cat ${cat.id} does not exist` })
  t.equal((await api.delete(`/cats/${cat.id}`)).statusCode, 404)
  const deleteAll = await api.delete('/cats')
  t.equal(deleteAll.statusCode, 405, 'there is no delete-everything for cats: the path exists, the method does not')
  t.equal(deleteAll.headers.allow, 'GET, HEAD, POST')
})

t.test('filters: breed (exact, any case), min_price, max_price, q', async (t) => {
  const { api } = await setup(t)
  const make = (name: string, breed: string | null, price: number) => api.create('/cats', { name, breed, price })
  const a = await make('Bagheera', 'Bengal', 120000)
  const b = await make('Luna', 'bengal', 5000)
  const c = await make('Mr. Bigglesworth', 'sphynx', 99999)
  const d = await make('Bengal Tiger Jr', 'bengal cross', 0)
  const e = await make('Nobody', null, 5000)
  const ids = async (query: string) => ((await api.get(`/cats?${query}`)).json() as Array<{ id: number }>).map((cat) => cat.id).sort((x, y) => x - y)
  t.same(await ids('breed=bengal'), [a.id, b.id], 'exact match, case-insensitive, not a substring')
  t.same(await ids('breed=BENGAL'), [a.id, b.id])
  t.same(await ids('min_price=5000'), [a.id, b.id, c.id, e.id], 'min_price is inclusive')
  t.same(await ids('max_price=5000'), [b.id, d.id, e.id], 'max_price is inclusive')
  t.same(await ids('min_price=5000&max_price=99999'), [b.id, c.id, e.id])
  t.same(await ids('q=BIG'), [c.id])
  t.same(await ids('q=bengal'), [d.id], 'q searches the name only')
  t.same(await ids('breed=bengal&max_price=10000&q=lu'), [b.id])
  t.equal((await api.get('/cats?breed=bengal&count=true')).headers['x-total-count'], '2')
})

t.test('sorting by name, price and created_at in both directions, paginated with Link', async (t) => {
  const { app, db } = await setup(t)
  await sql(db, `INSERT INTO cats (name, breed, price, owner_id) SELECT 'Cat ' || (i % 9), 'tabby', (i * 37) % 11 * 100, (SELECT id FROM users WHERE builtin) FROM generate_series(1, 40) i`)
  for (const [sort, key] of [['name', 'name'], ['price', 'price'], ['created_at', 'created_at']] as const) {
    for (const descending of [false, true]) {
      const order = `${descending ? '-' : ''}${sort}`
      const { rows } = await walk<Record<string, string | number>>(app, `/cats?sort=${order}&limit=6`)
      t.equal(rows.length, 40, order)
      const expected = [...rows].sort((x, y) => {
        const a = x[key] as string | number
        const b = y[key] as string | number
        const byKey = a === b ? (x.id as number) - (y.id as number) : a < b ? -1 : 1
        return descending ? -byKey : byKey
      })
      t.same(rows.map((row) => row.id), expected.map((row) => row.id), order)
    }
  }
})

t.test('strict validation: every bad price or name is a 400 naming the field, and nothing changes', async (t) => {
  const { api, snapshot } = await setup(t)
  const cat = await api.create('/cats', { name: 'Existing', price: 100 })
  const before = await snapshot()
  const cases: Array<[Record<string, unknown>, string, RegExp | string, boolean?]> = [
    [{ name: 'x', price: '5000' }, 'price', 'must be integer'],
    [{ name: 'x', price: 12.5 }, 'price', 'must be integer'],
    [{ name: 'x', price: -1 }, 'price', 'must be >= 0'],
    [{ name: 'x', price: 2147483648 }, 'price', 'must be <= 2147483647'],
    [{ name: 'x', price: 1e300 }, 'price', 'must be <= 2147483647'],
    [{ name: 'x', price: null }, 'price', 'must be integer'],
    [{ name: 'x' }, 'price', 'is required'],
    [{ price: 5 }, 'name', 'is required'],
    [{ name: '   ', price: 5 }, 'name', 'must not be blank'],
    [{ name: 'n'.repeat(201), price: 5 }, 'name', /more than 200/],
    [{ name: 'x', price: 5, breed: 'b'.repeat(101) }, 'breed', /more than 100/],
    [{ name: 'x', price: 5, breed: 7 }, 'breed', /must be string/],
    [{ name: 'x', price: 5, colour: 'black' }, 'colour', 'is not a known field'],
    [{ price: '4500' }, 'price', 'must be integer', true],
    [{ price: -5 }, 'price', 'must be >= 0', true],
    [{ name: null }, 'name', 'must be string', true],
    [{ owner: 'me' }, 'owner', 'is not a known field', true]
  ]
  for (const [body, field, message, patch] of cases) {
    const response = patch ? await api.patch(`/cats/${cat.id}`, body) : await api.post('/cats', body)
    const label = `${patch ? 'PATCH' : 'POST'} ${JSON.stringify(body).slice(0, 50)}`
    expectProblem(t, response, 400, { code: 'VALIDATION_FAILED', errors: [{ in: 'body', field, message }] }, label)
  }
  for (const query of ['min_price=-1', 'max_price=abc', 'sort=breed', 'limit=0']) {
    t.equal((await api.get(`/cats?${query}`)).statusCode, 400, query)
  }
  for (const id of ['abc', '0', '2147483648']) t.equal((await api.get(`/cats/${id}`)).statusCode, 400, id)
  t.same(await snapshot(), before, 'the database is unchanged')
})

t.test('cats are documented in OpenAPI like todos', async (t) => {
  const { app } = await setup(t)
  const doc = (await app.inject('/docs/json')).json()
  t.ok(doc.components.schemas.Cat)
  for (const [path, method, id] of [
    ['/cats', 'get', 'listCats'],
    ['/cats', 'post', 'createCat'],
    ['/cats/{id}', 'get', 'getCat'],
    ['/cats/{id}', 'patch', 'updateCat'],
    ['/cats/{id}', 'delete', 'deleteCat']
  ] as const) {
    t.equal(doc.paths[path]?.[method]?.operationId, id)
  }
  t.same(
    doc.paths['/cats'].get.parameters.map((parameter: { name: string }) => parameter.name).sort(),
    ['breed', 'count', 'cursor', 'limit', 'max_price', 'min_price', 'q', 'sort']
  )
})

t.test('CORS applies to cats too', async (t) => {
  const { app } = await setup(t)
  const response = await app.inject({
    method: 'OPTIONS',
    url: '/cats/1',
    headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'content-type,if-match' }
  })
  t.equal(response.statusCode, 204)
  t.equal(response.headers['access-control-allow-origin'], 'http://localhost:5173')
})
