import pg from 'pg'

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
