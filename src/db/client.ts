import pg from 'pg'

/**
 * What repositories query through: the request pool (db/plugin.ts). A failure to reach
 * the server is a 503 the client may retry, except for a `write` that was sent and not
 * answered: it may have been applied, so that is `OUTCOME_UNKNOWN` (504), never "retry".
 */
export interface Statements {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>
  write<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>
}
export interface Database extends Statements {
  /**
   * `use` inside one transaction on one connection: committed if it returns, rolled back
   * if it throws. Only where one statement cannot do: each statement of a transaction
   * sees what committed before it started (READ COMMITTED), which one statement's
   * snapshot does not.
   */
  transaction<T>(use: (tx: Statements) => Promise<T>): Promise<T>
}

/** A Database on one client (command-line tools), where a failure is just an error. */
export const clientDatabase = (client: pg.ClientBase): Database => {
  const statements: Statements = { query: (text, values) => client.query(text, values), write: (text, values) => client.query(text, values) }
  return {
    ...statements,
    async transaction(use) {
      await client.query('BEGIN')
      try {
        const result = await use(statements)
        await client.query('COMMIT')
        return result
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {})
        throw error
      }
    }
  }
}

/**
 * Runs `use` on a connection of its own, closed afterwards whatever happens: for the
 * one-off work outside the request pool (migrations, seeding, start-up checks).
 */
export async function withClient<T>(connectionString: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  // node-postgres would wait for a connection forever; the callers ran waitForDatabase
  // first, so a server that stops answering now is an error, not something to wait for.
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 10_000 })
  client.on('error', () => {}) // a dropped connection surfaces as a failed query instead
  await client.connect()
  try {
    return await use(client)
  } finally {
    await client.end().catch(() => {})
  }
}

/**
 * Transaction-scoped advisory locks that serialise work two instances may start at the
 * same moment; one list, so no two jobs ever share a key by accident. (node-pg-migrate's
 * own migration lock is separate.)
 */
export const LOCKS = {
  /** Creating the migration checksum table (IF NOT EXISTS alone still races in the catalog). */
  checksumsTable: 7_241_865_325_823_966,
  /** Loading the demo data (two instances starting with SEED_ON_START). */
  seed: 7_241_865_325_823_965
} as const

/** `use` inside one transaction holding the advisory lock `lock`: committed if it returns, rolled back if it throws. */
export async function inLockedTransaction<T>(client: pg.ClientBase, lock: number, use: () => Promise<T>): Promise<T> {
  await client.query('BEGIN')
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [lock])
    const result = await use()
    await client.query('COMMIT')
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  }
}
