/**
 * Lookups by id made in the same turn of the event loop share one statement
 * (src/resources/engine/batching.ts): each still gets its own row, scoped to its own
 * owner, and a statement that fails fails each request it carried as that request would
 * have failed alone.
 */
import pg from 'pg'
import t from 'tap'
import { newToken } from '../../src/accounts/tokens.js'
import { MAX_BATCH as MAX_LOOKUP_BATCH } from '../../src/resources/engine/batching.js'
import { buildTestApp, expectProblem, freshDatabase, sql } from '../helper.js'
import { createLookups, recordingDatabase, todos, twoUsers } from '../support/batching.js'

t.test('lookups in one turn share one statement; each finds its own row, and only its owner’s', async (t) => {
  const db = await freshDatabase(t)
  const { ids, users, tokens } = await twoUsers(db)
  const { database, statements } = recordingDatabase(t, db)
  const lookup = createLookups(database, todos)
  const ada = { userId: users.ada }
  const bobToken = { tokenHash: tokens.bob.hash }
  const found = await Promise.all([
    ...ids.ada.map((id) => lookup(ada, id)),
    ...ids.ada.map((id) => lookup(bobToken, id)), // Bob's token, Ada's rows
    ...ids.bob.map((id) => lookup(bobToken, id)),
    lookup(ada, ids.bob[0] as number), // Ada's id, Bob's row
    lookup({ tokenHash: tokens.revoked.hash }, ids.ada[0] as number),
    lookup({ tokenHash: newToken().hash }, ids.ada[0] as number),
    lookup(ada, 2_000_000_000),
    lookup(ada, ids.ada[1] as number) // the same lookup twice in one batch
  ])
  t.equal(statements.length, 2, 'one statement per kind of owner (user ids, tokens)')
  t.ok(statements.every((text) => text.includes('unnest(')), 'both batched')
  const idOf = (values: unknown[] | undefined) => values?.[0]
  t.same(found.slice(0, 5).map(idOf), ids.ada, 'Ada’s rows, each to the lookup that asked for it')
  t.same(found.slice(5, 10), [undefined, undefined, undefined, undefined, undefined], 'Bob’s token finds none of Ada’s rows')
  t.same(found.slice(10, 15).map(idOf), ids.bob, 'and each of his own')
  t.equal(found[15], undefined, 'Ada’s id finds none of Bob’s rows')
  t.equal(found[16], undefined, 'a revoked token finds nothing')
  t.equal(found[17], undefined, 'an unknown token finds nothing')
  t.equal(found[18], undefined, 'a missing id finds nothing')
  t.equal(idOf(found[19]), ids.ada[1], 'a lookup asked twice in one batch is answered twice')
  t.match(found[0], [ids.ada[0], 'ada 1', null, false, null, null, null, null, [], 1, null, {}, String, String, 1, users.ada], 'the item’s columns, its version and owner last')
})

t.test('a lookup alone runs the plain statement; more than a batch holds go in further statements', async (t) => {
  const db = await freshDatabase(t)
  const { ids, users } = await twoUsers(db)
  const { database, statements } = recordingDatabase(t, db)
  const lookup = createLookups(database, todos)
  t.equal((await lookup({ userId: users.ada }, ids.ada[0] as number))?.[0], ids.ada[0])
  t.equal(statements.length, 1)
  t.notMatch(statements[0], /unnest/, 'no batch of one')
  statements.length = 0
  const many = Array.from({ length: MAX_LOOKUP_BATCH * 2 + 1 }, (_, i) => ids.ada[i % 5] as number)
  const found = await Promise.all(many.map((id) => lookup({ userId: users.ada }, id)))
  t.same(found.map((values) => values?.[0]), many, 'every one answered, in its own place')
  t.equal(statements.length, 3, `${MAX_LOOKUP_BATCH}, ${MAX_LOOKUP_BATCH} and the last one alone`)
  t.equal(statements.filter((text) => text.includes('unnest(')).length, 2)
})

t.test('the batched statement reads each row by its primary key, in the generic plan too', async (t) => {
  const db = await freshDatabase(t)
  const { ids, tokens } = await twoUsers(db)
  const { database, statements } = recordingDatabase(t, db)
  const lookup = createLookups(database, todos)
  await Promise.all(ids.ada.map((id) => lookup({ tokenHash: tokens.ada.hash }, id)))
  const text = statements[0] as string
  await sql(db, `INSERT INTO todos (title, owner_id) SELECT 'more ' || i, $1 FROM generate_series(1, 5000) i`, [(await sql<{ id: number }>(db, 'SELECT id FROM users WHERE builtin'))[0]?.id])
  await sql(db, 'ANALYZE todos')
  const client = new pg.Client({ connectionString: db })
  await client.connect()
  t.teardown(() => client.end())
  for (const mode of ['force_custom_plan', 'force_generic_plan']) {
    await client.query(`SET plan_cache_mode = ${mode}`)
    const plan = (await client.query({ name: `plan_${mode}`, text: `EXPLAIN ${text}`, values: [ids.ada, ids.ada.map(() => tokens.ada.hash)] })).rows
      .map((row: { 'QUERY PLAN': string }) => row['QUERY PLAN'])
      .join('\n')
    t.match(plan, /Index Scan using todos_pkey on todos t/, mode)
    t.notMatch(plan, /Seq Scan on todos/, mode)
  }
})

t.test('over HTTP: concurrent reads by two users each get their own answers, and a batch that times out is a 503 for each', async (t) => {
  const { app, db } = await buildTestApp(t, { env: { AUTH_MODE: 'required', DATABASE_POOL_MAX: '1', DATABASE_STATEMENT_TIMEOUT_MS: '300' } })
  const { ids, tokens } = await twoUsers(db)
  const as = (token: { secret: string }) => ({ authorization: `Bearer ${token.secret}` })
  const get = (id: number, token: { secret: string }) => app.inject({ url: `/todos/${id}`, headers: as(token) })

  const answers = await Promise.all([...ids.ada.map((id) => get(id, tokens.ada)), ...ids.ada.map((id) => get(id, tokens.bob)), get(ids.ada[0] as number, tokens.revoked)])
  t.same(answers.slice(0, 5).map((answer) => [answer.statusCode, answer.json().id]), ids.ada.map((id) => [200, id]))
  t.same(answers.slice(0, 5).map((answer) => answer.headers.etag), ids.ada.map(() => '"1"'))
  for (const answer of answers.slice(5, 10)) expectProblem(t, answer, 404, { code: 'NOT_FOUND' }, 'another user’s row')
  expectProblem(t, answers[10] as (typeof answers)[number], 401, { code: 'UNAUTHENTICATED' }, 'a revoked token')
  const prepared = (await app.pg.pool.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements')).rows
  t.ok(prepared.some((row) => row.statement.includes('unnest(')), 'they went as one batched statement')

  // The table locked past the statement limit: every lookup of the batch is cancelled with it.
  const holder = new pg.Client({ connectionString: db })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('BEGIN')
  await holder.query('LOCK TABLE todos IN ACCESS EXCLUSIVE MODE')
  const blocked = await Promise.all(ids.ada.map((id) => get(id, tokens.ada)))
  await holder.query('COMMIT')
  for (const answer of blocked) {
    expectProblem(t, answer, 503, {}, 'cancelled at the statement limit')
    t.match(answer.headers['retry-after'], /^\d+$/, 'a read: safe to retry')
  }
  const after = await Promise.all(ids.ada.map((id) => get(id, tokens.ada)))
  t.same(after.map((answer) => answer.statusCode), ids.ada.map(() => 200), 'and the next batch is answered')
})
