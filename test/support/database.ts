import pg from 'pg'
import type { Test } from 'tap'
import { newToken } from '../../src/accounts/tokens.js'
import { withClient } from '../../src/db/client.js'
import { readClusterState } from '../setup/cluster.js'

export { withClient }

let databases = 0

/**
 * A database of this test's own, dropped when the test ends: a clone of the migrated
 * template (fast: a file copy), or an empty one with `migrated: false`.
 */
export async function freshDatabase(t: Test, { migrated = true } = {}): Promise<string> {
  const state = readClusterState()
  const name = `test_${process.pid}_${++databases}`
  await withClient(state.adminUrl, (client) =>
    client.query(`CREATE DATABASE ${name} TEMPLATE ${migrated ? state.templateDatabase : 'template0'}`)
  )
  t.teardown(() => withClient(state.adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)))
  const url = new URL(state.adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/**
 * Adds `count` todos in one statement; each column is an SQL expression of `i`, the
 * row's number from 1 (e.g. `{ title: "'todo ' || i", completed: 'i % 3 = 0' }`).
 */
export async function insertTodos(connectionString: string, count: number, columns: Record<string, string>): Promise<void> {
  // The local user's unless `owner_id` says otherwise (tests act as the local user: AUTH_MODE=local).
  const all = { owner_id: '(SELECT id FROM users WHERE builtin)', ...columns }
  const names = Object.keys(all).map((name) => `"${name}"`).join(', ')
  await sql(connectionString, `INSERT INTO todos (${names}) SELECT ${Object.values(all).join(', ')} FROM generate_series(1, ${count}) i`)
}

/** Runs one statement on its own connection and returns the rows. */
export const sql = <R extends pg.QueryResultRow = Record<string, unknown>>(connectionString: string, text: string, values: unknown[] = []) =>
  withClient(connectionString, async (client) => (await client.query<R>(text, values)).rows)

/** Users with a valid token each (`Authorization` headers), named by their email's local part. */
export async function usersWithTokens<const N extends string>(db: string, names: readonly N[]): Promise<Record<N, { id: number; headers: Record<string, string> }>> {
  const users = {} as Record<N, { id: number; headers: Record<string, string> }>
  for (const name of names) {
    const token = newToken()
    const [user] = await sql<{ id: number }>(db, `INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id`, [`${name}@example.com`, name])
    await sql(db, `INSERT INTO api_tokens (user_id, name, token_hash, prefix) VALUES ($1, 'test', $2, 't')`, [user?.id, token.hash])
    users[name] = { id: user?.id as number, headers: { authorization: `Bearer ${token.secret}` } }
  }
  return users
}

/**
 * Another session holding a row's lock (`SELECT … FOR UPDATE` in an open transaction), so
 * that a statement of the app's on it cannot finish; `release()` commits. Ended after the test.
 */
export async function holdRowLock(t: Test, db: string, table: string, id: number): Promise<{ release(): Promise<void> }> {
  const holder = new pg.Client({ connectionString: db })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('BEGIN')
  await holder.query(`SELECT 1 FROM ${table} WHERE id = $1 FOR UPDATE`, [id])
  return { release: async () => void (await holder.query('COMMIT')) }
}

/** Returns once `count` statements of `db` wait for a lock (a row another connection holds); throws after 10 s. */
export async function waitForLockWaiters(db: string, count: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const [row] = await sql<{ n: number }>(db, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
    if ((row?.n ?? 0) >= count) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`fewer than ${count} statements waited for the row`)
}
