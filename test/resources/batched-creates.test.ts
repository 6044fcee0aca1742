/**
 * Creates made in the same turn of the event loop share one INSERT
 * (src/resources/engine/batching.ts): each still gets its own row, owned by its own
 * owner, and a statement that fails fails each create it carried as that create would have
 * failed alone.
 */
import pg from 'pg'
import t from 'tap'
import { newToken } from '../../src/accounts/tokens.js'
import { MAX_BATCH as MAX_LOOKUP_BATCH } from '../../src/resources/engine/batching.js'
import { resourceStatements } from '../../src/resources/engine/statements.js'
import { buildTestApp, expectProblem, freshDatabase, sql } from '../helper.js'
import { RESOURCES, createInserts, recordingDatabase, todos, twoUsers } from '../support/batching.js'

t.test('creates in one turn share one INSERT; each gets its own row, owned by its own owner', async (t) => {
  const db = await freshDatabase(t)
  const { users, tokens } = await twoUsers(db)
  const { database, statements } = recordingDatabase(t, db)
  const insert = createInserts(database, todos)
  const ada = { tokenHash: tokens.ada.hash }
  const bob = { tokenHash: tokens.bob.hash }
  const requests = Array.from({ length: MAX_LOOKUP_BATCH + 20 }, (_, i) => ({ owner: i % 3 === 0 ? bob : ada, title: `new ${i}` }))
  requests[7] = { owner: { tokenHash: tokens.revoked.hash }, title: 'revoked' }
  requests[8] = { owner: { tokenHash: newToken().hash }, title: 'unknown' }
  const created = await Promise.all(requests.map(({ owner, title }) => insert(owner, [['title', title], ['completed', title.endsWith('0')]])))
  t.equal(statements.length, 2, `${MAX_LOOKUP_BATCH} creates, then the rest`)
  t.ok(statements.every((text) => text.includes('unnest(')), 'both batched')
  t.same(created.map((values) => values?.[1]), requests.map(({ title }, i) => (i === 7 || i === 8 ? undefined : title)), 'each create answered with its own row; none for a token that is not valid')
  t.same(created.map((values) => values?.[3]), requests.map(({ title }, i) => (i === 7 || i === 8 ? undefined : title.endsWith('0'))), 'with its own values')
  // (The two statements ran side by side on two connections: which committed first is theirs to say.)
  const stored = await sql<{ title: string; owner_id: number }>(db, `SELECT title, owner_id FROM todos WHERE title LIKE 'new %' OR title IN ('revoked', 'unknown') ORDER BY title`)
  t.same(
    stored,
    requests
      .filter((_, i) => i !== 7 && i !== 8)
      .map(({ owner, title }) => ({ title, owner_id: owner === bob ? users.bob : users.ada }))
      .sort((a, b) => (a.title < b.title ? -1 : 1)),
    'in the database: every row once, with the owner of the token that made it'
  )
  const batchOf = (title: string) => (Number(title.slice(4)) < MAX_LOOKUP_BATCH ? 0 : 1)
  // Rows go in owner by owner (so that per-owner locks are taken in one order), each
  // owner's in the order of the batch.
  const rowsOf = async (batch: number, owner: number) =>
    (await sql<{ title: string }>(db, `SELECT title FROM todos WHERE title LIKE 'new %' AND owner_id = $1 ORDER BY id`, [owner])).map((row) => row.title).filter((title) => batchOf(title) === batch)
  for (const [batch, owner] of [0, 1].flatMap((b) => [users.ada, users.bob].map((o) => [b, o] as const))) {
    const titles = await rowsOf(batch, owner)
    t.same(titles, [...titles].sort((a, b) => Number(a.slice(4)) - Number(b.slice(4))), `batch ${batch + 1}: each owner's ids given in the order of the batch`)
  }
  t.same(new Set(created.filter(Boolean).map((values) => values?.[0])).size, requests.length - 2, 'every id its own')
})

t.test('a value PostgreSQL refuses fails only its own create: the batch wrote nothing, and each create runs alone', async (t) => {
  const db = await freshDatabase(t)
  const { database, statements } = recordingDatabase(t, db)
  const insert = createInserts(database, todos)
  const { users, tokens } = await twoUsers(db)
  const ada = { tokenHash: tokens.ada.hash }
  const bob = { tokenHash: tokens.bob.hash }
  const revoked = { tokenHash: tokens.revoked.hash }
  // The API's schema refuses these titles before they get here; the database is the last wall.
  const requests = [
    { owner: ada, title: 'good 1' },
    { owner: ada, title: ' ' },
    { owner: bob, title: 'good 2' },
    { owner: revoked, title: 'never' },
    { owner: bob, title: 'x'.repeat(501) },
    { owner: ada, title: 'good 3' }
  ]
  const results = await Promise.allSettled(requests.map(({ owner, title }) => insert(owner, [['title', title]])))
  t.same(
    results.map((result) => result.status),
    ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled']
  )
  t.same(
    results.map((result) => (result.status === 'fulfilled' ? (result.value as unknown[] | undefined)?.[1] : 'refused')),
    ['good 1', 'refused', 'good 2', undefined, 'refused', 'good 3'],
    'each answered with its own row, and nothing for the revoked token'
  )
  t.match((results[1] as PromiseRejectedResult).reason, { code: '23514' }, 'the check constraint, for that create alone')
  t.equal(statements.filter((text) => text.includes('unnest(')).length, 1, 'one batch, refused whole')
  t.equal(statements.filter((text) => !text.includes('unnest(')).length, 6, 'then each create alone')
  t.same(
    await sql(db, "SELECT title, owner_id FROM todos WHERE title LIKE 'good %' OR title = 'never' ORDER BY title"),
    [
      { title: 'good 1', owner_id: users.ada },
      { title: 'good 2', owner_id: users.bob },
      { title: 'good 3', owner_id: users.ada }
    ]
  )
  t.same((await sql<{ n: number }>(db, 'SELECT count(*)::int AS n FROM todos'))[0], { n: 13 }, 'and nothing else: ten rows of the set-up, three new')
})

t.test('a batch stores what a create alone stores: nulls, time zones, fractions of a second, for each user id', async (t) => {
  const db = await freshDatabase(t)
  const { users } = await twoUsers(db)
  const { database, statements } = recordingDatabase(t, db)
  const insert = createInserts(database, todos)
  const entries = (title: string): Array<[string, unknown]> => [
    ['title', title],
    ['description', null],
    ['completed', true],
    ['order', null],
    ['due_date', '2026-12-24T18:00:00.1234+01:00']
  ]
  const alone = await insert({ userId: users.ada }, entries('alone'))
  const batched = await Promise.all([insert({ userId: users.ada }, entries('batched ada')), insert({ userId: users.bob }, entries('batched bob'))])
  t.same(statements.map((text) => text.includes('unnest(')), [false, true])
  const columns = (values: unknown[] | undefined) => values?.slice(2, 6) // description, completed, order, due_date
  t.same(batched.map(columns), [columns(alone), columns(alone)], 'the same values back')
  t.same(columns(alone), [null, true, null, '2026-12-24T17:00:00.123'])
  const stored = await sql(db, "SELECT title, owner_id, description, completed, \"order\", due_date = (SELECT due_date FROM todos WHERE title = 'alone') AS same_due FROM todos WHERE title LIKE 'batched %' ORDER BY title")
  t.same(stored, [
    { title: 'batched ada', owner_id: users.ada, description: null, completed: true, order: null, same_due: true },
    { title: 'batched bob', owner_id: users.bob, description: null, completed: true, order: null, same_due: true }
  ])
})

t.test('what the batched INSERT relies on: every resource id is an identity column, and no insert trigger renumbers or drops a row', async (t) => {
  const db = await freshDatabase(t)
  for (const resource of RESOURCES) {
    const [column] = await sql<{ is_identity: string }>(db, `SELECT is_identity FROM information_schema.columns WHERE table_name = $1 AND column_name = 'id'`, [resource.table])
    t.equal(column?.is_identity, 'YES', `${resource.table}.id is an identity column`)
    // FOR EACH ROW, BEFORE, INSERT (tgtype bits 1, 2, 4): the only triggers that can renumber or drop a row.
    const triggers = await sql<{ name: string; source: string }>(
      db,
      `SELECT t.tgname AS name, p.prosrc AS source FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE t.tgrelid = $1::regclass AND NOT t.tgisinternal AND (t.tgtype & 7) = 7`,
      [resource.table]
    )
    for (const { name, source } of triggers) {
      t.notMatch(source, /NEW\.id\s*:=/i, `${resource.table}: ${name} leaves the id alone`)
      t.notMatch(source, /RETURN\s+NULL/i, `${resource.table}: ${name} never drops the row`)
    }
  }
  const insertTriggers = await sql(db, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'todos'::regclass AND NOT tgisinternal AND (tgtype & 7) = 7 ORDER BY 1`)
  t.same(insertTriggers.map((row) => row.tgname), ['todos_check_parent', 'todos_completed_at_insert', 'todos_distinct_labels'], 'the ones checked are the ones there')
})

t.test("two batches of subtasks by the same two users, in opposite orders, do not deadlock on the owners' locks", async (t) => {
  const db = await freshDatabase(t)
  const { users, ids } = await twoUsers(db)
  const [first, second] = users.ada < users.bob ? (['ada', 'bob'] as const) : (['bob', 'ada'] as const)
  const text = resourceStatements(todos).insertMany(['title', 'parent_id'], 'user')
  const batch = (order: Array<'ada' | 'bob'>) => [order.map((who) => `sub of ${who}`), order.map((who) => ids[who][0]), order.map((who) => users[who])]
  const clients = [new pg.Client(db), new pg.Client(db), new pg.Client(db)]
  for (const client of clients) await client.connect()
  t.teardown(() => Promise.all(clients.map((client) => client.end())))
  const [holder, one, two] = clients as [pg.Client, pg.Client, pg.Client]
  const waiting = async (pid: number) => {
    for (let i = 0; i < 500; i++) {
      const { rows } = await holder.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [pid])
      if (rows[0]?.wait_event_type === 'Lock') return true
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    return false
  }
  const pid = async (client: pg.Client) => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number
  const [pidOne, pidTwo] = [await pid(one), await pid(two)]
  // The second owner's lock is held, so each batch stops at it: with rows taken in request
  // order, one batch would wait holding the first owner's lock while the other waits for it.
  await holder.query('SELECT pg_advisory_lock(2026120201, $1)', [users[second]])
  const answers = [one.query(text, batch([second, first])).then(() => 'ok', (e: { code?: string }) => e.code ?? 'error')]
  t.ok(await waiting(pidOne), 'the first batch waits for the held lock')
  answers.push(two.query(text, batch([first, second])).then(() => 'ok', (e: { code?: string }) => e.code ?? 'error'))
  t.ok(await waiting(pidTwo), 'the second batch waits too')
  await holder.query('SELECT pg_advisory_unlock(2026120201, $1)', [users[second]])
  t.same(await Promise.all(answers), ['ok', 'ok'], 'both batches commit, neither is chosen as a deadlock victim (40P01)')
  t.equal((await sql<{ n: number }>(db, `SELECT count(*)::int AS n FROM todos WHERE title LIKE 'sub of %'`))[0]?.n, 4)
})

t.test('over HTTP: concurrent creates by two users each get their own item, Location and ETag; a batch that times out writes nothing', async (t) => {
  const { app, db } = await buildTestApp(t, { env: { AUTH_MODE: 'required', DATABASE_POOL_MAX: '1', DATABASE_STATEMENT_TIMEOUT_MS: '300' } })
  const { users, tokens } = await twoUsers(db)
  const post = (title: string, token: { secret: string }) =>
    app.inject({ method: 'POST', url: '/todos', headers: { authorization: `Bearer ${token.secret}` }, payload: { title, order: title.length } })
  const titles = ['one', 'two', 'three', 'four', 'five', 'six']
  const answers = await Promise.all([...titles.map((title, i) => post(title, i % 2 ? tokens.bob : tokens.ada)), post('never', tokens.revoked)])
  for (const [i, answer] of answers.slice(0, 6).entries()) {
    const body = answer.json()
    t.equal(answer.statusCode, 201)
    t.match(body, { title: titles[i], order: titles[i]?.length, completed: false })
    t.equal(answer.headers.location, `http://localhost:80/todos/${body.id}`)
    t.equal(body.url, answer.headers.location)
    t.equal(answer.headers.etag, '"1"')
  }
  expectProblem(t, answers[6] as (typeof answers)[number], 401, { code: 'UNAUTHENTICATED' }, 'a revoked token creates nothing')
  const stored = await sql<{ title: string; owner_id: number }>(db, `SELECT title, owner_id FROM todos WHERE title = ANY($1) ORDER BY owner_id, id`, [[...titles, 'never']])
  const expected = titles.map((title, i) => ({ title, owner_id: i % 2 ? users.bob : users.ada }))
  t.same(stored, [...expected].sort((a, b) => a.owner_id - b.owner_id), "each owner's rows once, in the order they were posted")
  const prepared = (await app.pg.pool.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements')).rows
  t.ok(prepared.some((row) => row.statement.includes('INSERT') && row.statement.includes('unnest(')), 'they went as one batched INSERT')

  // Cats, the other resource, the same way.
  const cats = await Promise.all(
    ['Tom', 'Felix', 'Garfield'].map((name, i) =>
      app.inject({ method: 'POST', url: '/cats', headers: { authorization: `Bearer ${(i % 2 ? tokens.bob : tokens.ada).secret}` }, payload: { name, price: 100 * i } })
    )
  )
  t.same(cats.map((answer) => [answer.statusCode, answer.json().name, answer.json().price]), [[201, 'Tom', 0], [201, 'Felix', 100], [201, 'Garfield', 200]])
  t.same(await sql(db, 'SELECT name, owner_id FROM cats ORDER BY price'), [
    { name: 'Tom', owner_id: users.ada },
    { name: 'Felix', owner_id: users.bob },
    { name: 'Garfield', owner_id: users.ada }
  ])

  const holder = new pg.Client({ connectionString: db })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('BEGIN')
  await holder.query('LOCK TABLE todos IN ACCESS EXCLUSIVE MODE')
  const blocked = await Promise.all(titles.map((title) => post(`blocked ${title}`, tokens.ada)))
  await holder.query('COMMIT')
  for (const answer of blocked) expectProblem(t, answer, 503, {}, 'cancelled at the statement limit, and rolled back')
  t.same((await sql<{ n: number }>(db, "SELECT count(*)::int AS n FROM todos WHERE title LIKE 'blocked %'"))[0], { n: 0 }, 'nothing was written')
})
