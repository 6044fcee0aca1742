/**
 * The floor `make bench` measures the service against: node:http and a pg pool, one named
 * prepared statement per query, JSON.stringify, no framework, no validation, no logging,
 * no headers beyond Content-Type. It does the database work the API must do, and nothing
 * more: a request with `Authorization: Bearer <token>` acts for the token's user, found
 * inside the same statement by the token's SHA-256 (remembered per token, as the API
 * does), so a revoked token is refused at once; a request without one acts for the
 * built-in local user (the owner of the benchmark's rows), whose id is looked up once.
 * Reads and writes are that owner's rows, as the service's are, and the list uses the
 * API's default order and the index that serves it (migrations/0004). Plain JavaScript,
 * so nothing compiles or loads beyond node and pg.
 * Usage: node baseline-server.mjs <database url> <port>
 */
import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import pg from 'pg'

// Connections kept between rounds, as the API keeps them (DATABASE_POOL_IDLE_TIMEOUT_MS):
// neither side pays for opening its pool again after waiting for the other.
const pool = new pg.Pool({ connectionString: process.argv[2], max: 10, idleTimeoutMillis: 600_000 })
const columns = 'id, title, description, completed, completed_at, "order", due_date, list_id, parent_id, labels, priority, metadata, created_at, updated_at'
const local = (await pool.query('SELECT id FROM users WHERE builtin')).rows[0].id
const validToken = 'token_hash = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())'
// Each query by kind of owner ($2): a user id, or a token's hash.
const statements = (name, user, token) => ({ user: { name, text: user }, token: { name: `${name}_token`, text: token } })
const byIdText = (owner) => `SELECT ${columns} FROM todos WHERE id = $1 AND owner_id = ${owner}`
const byId = statements('floor_by_id', byIdText('$2'), byIdText(`(SELECT user_id FROM api_tokens WHERE ${validToken})`))
const pageText = (owner) => `SELECT ${columns} FROM todos WHERE owner_id = ${owner} ORDER BY coalesce("order"::bigint, 2147483648) ASC, id ASC LIMIT $1`
const page = statements('floor_page', pageText('$2'), pageText(`(SELECT user_id FROM api_tokens WHERE ${validToken})`))
const insert = statements(
  'floor_insert',
  `INSERT INTO todos (title, owner_id) VALUES ($1, $2) RETURNING ${columns}`,
  `INSERT INTO todos (title, owner_id) SELECT $1, user_id FROM api_tokens WHERE ${validToken} RETURNING ${columns}`
)

const hashes = new Map()
/** The request's owner: its kind, and the value for $2. */
const ownerOf = (request) => {
  const token = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1]
  if (token === undefined) return ['user', local]
  let hash = hashes.get(token)
  if (hash === undefined) hashes.set(token, (hash = createHash('sha256').update(token).digest()))
  return ['token', hash]
}

const send = (response, status, body) => response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
const failed = (response) => () => send(response, 500, {})

const server = createServer((request, response) => {
  const url = request.url ?? '/'
  const [kind, owner] = ownerOf(request)
  const one = /^\/todos\/(\d+)$/.exec(url)
  if (one && request.method === 'GET') {
    pool.query({ ...byId[kind], values: [Number(one[1]), owner] }).then(({ rows }) => (rows[0] ? send(response, 200, rows[0]) : send(response, 404, {})), failed(response))
  } else if (url.startsWith('/todos?') && request.method === 'GET') {
    const limit = Number(new URLSearchParams(url.slice(7)).get('limit') ?? 100)
    pool.query({ ...page[kind], values: [limit, owner] }).then(({ rows }) => send(response, 200, rows), failed(response))
  } else if (url === '/todos' && request.method === 'POST') {
    let body = ''
    request.setEncoding('utf8').on('data', (chunk) => (body += chunk)).on('end', () => {
      let title
      try {
        title = JSON.parse(body).title
      } catch {
        return send(response, 400, {})
      }
      pool.query({ ...insert[kind], values: [title, owner] }).then(({ rows }) => (rows[0] ? send(response, 201, rows[0]) : send(response, 401, {})), failed(response))
    })
  } else {
    send(response, 404, {})
  }
})
server.keepAliveTimeout = 72_000
server.listen(Number(process.argv[3]), '127.0.0.1', () => process.stdout.write('listening\n'))
