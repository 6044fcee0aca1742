import pg from 'pg'

/**
 * Runs `use` on a connection of its own, closed afterwards whatever happens: for the
 * one-off work outside the request pool (migrations, seeding, start-up checks).
 */
export async function withClient<T>(connectionString: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString })
  client.on('error', () => {}) // a dropped connection surfaces as a failed query instead
  await client.connect()
  try {
    return await use(client)
  } finally {
    await client.end().catch(() => {})
  }
}
