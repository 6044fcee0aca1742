import net from 'node:net'
import pg from 'pg'

/*
 * The one file that knows node-postgres' internals: a CancelRequest needs the backend's
 * key and the very socket a client is connected to, cutting a connection needs its
 * socket, and a named statement without the library's config copy needs its Query. A pg
 * upgrade that moves them breaks here, and test/db/pg-adapter.test.ts says so.
 */

/** What a CancelRequest needs: where the client connected and the key the server gave it. */
interface CancellableClient {
  host: string
  port: number
  processID: number | null
  secretKey: number | null
  connection?: { stream?: { remoteAddress?: string; remotePort?: number } }
}

/**
 * Asks the server (or the pooler in front of it) to cancel what `client` is running: the
 * protocol's CancelRequest on a connection of its own, as libpq's PQcancel sends it. This
 * is how a time limit holds per statement without session state: PgBouncer forwards the
 * request to the server connection the client is linked to, while a `statement_timeout`
 * set at connect time is refused (or dropped) by a pooler in transaction mode. Resolves
 * once the request was delivered or could not be, never rejects, within `timeoutMs`.
 */
export function cancelBackend(client: pg.ClientBase, timeoutMs = 1000): Promise<boolean> {
  const { host, port, processID, secretKey, connection } = client as unknown as CancellableClient
  if (processID === null || secretKey === null) return Promise.resolve(false)
  // The very server (or pooler) the client is connected to, not its name again: behind
  // one name for several PgBouncers, another one would not know the key.
  const peer = connection?.stream?.remoteAddress ? { host: connection.stream.remoteAddress, port: connection.stream.remotePort ?? port } : { host, port }
  const packet = Buffer.alloc(16)
  packet.writeInt32BE(16, 0)
  packet.writeInt32BE(80877102, 4) // the CancelRequest code: 1234 << 16 | 5678
  packet.writeInt32BE(processID, 8)
  packet.writeInt32BE(secretKey, 12)
  return new Promise((resolve) => {
    const socket = peer.host.startsWith('/') ? net.connect(`${peer.host}/.s.PGSQL.${peer.port}`) : net.connect(peer)
    let sent = false
    socket.setTimeout(timeoutMs, () => socket.destroy())
    // Like libpq: write the request and wait for the other side to close the connection
    // (it never answers). Closing first is not the same: PgBouncer 1.18 exits with "bad
    // client state" when the requester goes away while it forwards the cancel.
    socket.on('connect', () => socket.write(packet, () => (sent = true)))
    socket.on('end', () => socket.end())
    socket.on('error', () => {})
    socket.on('close', () => resolve(sent))
  })
}

/** How long a cancelled statement has to stop before its connection is cut. */
export const CANCEL_GRACE_MS = 1000

/** Closes a connection's socket under a running statement, which then fails at once. */
export function destroyConnection(client: pg.PoolClient | pg.Client) {
  ;(client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy()
}

/**
 * A named prepared statement, without node-postgres' copy of its config: pg 8.23 copies
 * every config object it is given (brianc/node-postgres#3720), while a text and values
 * are taken as they are. The name is then set as the config would have set it;
 * test/db/plugin.test.ts checks the statements are prepared under it.
 */
export function namedQuery(client: pg.PoolClient, name: string, text: string, values: unknown[] | undefined): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    const query = new pg.Query(text, values, (error, result) => (error ? reject(error) : resolve(result as unknown as pg.QueryResult)))
    ;(query as pg.Query & { name?: string }).name = name
    client.query(query)
  })
}

/** Whether a client's socket keeps the process alive: a connection held only to be seen (presence) must not. */
export function keepsProcessAlive(client: pg.Client, keeps: boolean): void {
  const { stream } = (client as unknown as { connection: { stream: { ref(): void; unref(): void } } }).connection
  if (keeps) stream.ref()
  else stream.unref()
}
