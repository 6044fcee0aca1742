/** What the batching tests share: the engine's batched reads and creates, two users, a recording Database. */
import pg from 'pg'
import type { Test } from 'tap'
import type { Owner } from '../../src/accounts/owner.js'
import { newToken } from '../../src/accounts/tokens.js'
import type { Database } from '../../src/db/client.js'
import { batchedCreates, batchedReads } from '../../src/resources/engine/batching.js'
import type { AnyResource } from '../../src/resources/engine/define.js'
import { resourceStatements } from '../../src/resources/engine/statements.js'
import { loadResources } from '../../src/resources/index.js'
import { sql } from './database.js'

export const RESOURCES = await loadResources()
const found = RESOURCES.find((resource) => resource.plural === 'todos')
if (found === undefined) throw new Error('no todos resource')
export const todos = found

/** The engine's batched reads and creates of a resource, on `database`. */
export const createLookups = (database: Database, resource: AnyResource) => batchedReads(database, resourceStatements(resource))
export const createInserts = (database: Database, resource: AnyResource) => {
  const create = batchedCreates(database, resourceStatements(resource))
  return (owner: Owner, entries: Array<[string, unknown]>) =>
    create(
      owner,
      entries.map(([name]) => name),
      entries.map(([, value]) => value)
    )
}

/** Two users with a token each, a revoked token of the first, and todos of each. */
export async function twoUsers(db: string) {
  const tokens = { ada: newToken(), bob: newToken(), revoked: newToken() }
  const [ada, bob] = (await sql<{ id: number }>(db, `INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada'), ('bob@example.com', 'Bob') RETURNING id`)).map((row) => row.id)
  await sql(
    db,
    `INSERT INTO api_tokens (user_id, name, token_hash, prefix, revoked_at)
     VALUES ($1, 'ada', $3, 'a', NULL), ($2, 'bob', $4, 'b', NULL), ($1, 'old', $5, 'o', now())`,
    [ada, bob, tokens.ada.hash, tokens.bob.hash, tokens.revoked.hash]
  )
  const insert = async (owner: number | undefined, prefix: string) =>
    (await sql<{ id: number }>(db, `INSERT INTO todos (title, owner_id) SELECT $2 || i, $1 FROM generate_series(1, 5) i RETURNING id`, [owner, prefix])).map((row) => row.id)
  return { tokens, ids: { ada: await insert(ada, 'ada '), bob: await insert(bob, 'bob ') }, users: { ada: ada as number, bob: bob as number } }
}

/** A Database on a real pool that records the statements it is given. */
export function recordingDatabase(t: Test, db: string) {
  const pool = new pg.Pool({ connectionString: db, max: 2 })
  t.teardown(() => pool.end())
  const statements: string[] = []
  const database: Database = {
    query: (text, values) => (statements.push(text), pool.query(text, values)),
    write: (text, values) => (statements.push(text), pool.query(text, values)),
    transaction: () => Promise.reject(new Error('not used'))
  }
  return { database, statements }
}
