/**
 * The floor `make bench` measures the service against: node:http and a pg pool, one named
 * prepared statement per query, JSON.stringify, no framework, no validation, no logging,
 * no headers beyond Content-Type, no authentication: every request is the built-in local
 * user's (the owner of the benchmark's rows), whose id is looked up once. Reads and
 * writes are that owner's rows, as the service's are, and the list uses the API's default
 * order and the index that serves it (migrations/0004). Plain JavaScript, so nothing
 * compiles or loads beyond node and pg. Usage: node baseline-server.mjs <database url> <port>
 */
import { createServer } from 'node:http'
import pg from 'pg'

const pool = new pg.Pool({ connectionString: process.argv[2], max: 10 })
const columns = 'id, title, description, completed, "order", due_date, created_at, updated_at'
const owner = (await pool.query('SELECT id FROM users WHERE builtin')).rows[0].id
const byId = { name: 'floor_by_id', text: `SELECT ${columns} FROM todos WHERE id = $1 AND owner_id = $2` }
const page = { name: 'floor_page', text: `SELECT ${columns} FROM todos WHERE owner_id = $2 ORDER BY coalesce("order"::bigint, 2147483648) ASC, id ASC LIMIT $1` }
const insert = { name: 'floor_insert', text: `INSERT INTO todos (title, owner_id) VALUES ($1, $2) RETURNING ${columns}` }

const send = (response, status, body) => response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))

const server = createServer((request, response) => {
  const url = request.url ?? '/'
  const one = /^\/todos\/(\d+)$/.exec(url)
  if (one && request.method === 'GET') {
    pool.query({ ...byId, values: [Number(one[1]), owner] }).then(({ rows }) => (rows[0] ? send(response, 200, rows[0]) : send(response, 404, {})), () => send(response, 500, {}))
  } else if (url.startsWith('/todos?') && request.method === 'GET') {
    const limit = Number(new URLSearchParams(url.slice(7)).get('limit') ?? 100)
    pool.query({ ...page, values: [limit, owner] }).then(({ rows }) => send(response, 200, rows), () => send(response, 500, {}))
  } else if (url === '/todos' && request.method === 'POST') {
    let body = ''
    request.setEncoding('utf8').on('data', (chunk) => (body += chunk)).on('end', () => {
      let title
      try {
        title = JSON.parse(body).title
      } catch {
        return send(response, 400, {})
      }
      pool.query({ ...insert, values: [title, owner] }).then(({ rows }) => send(response, 201, rows[0]), () => send(response, 500, {}))
    })
  } else {
    send(response, 404, {})
  }
})
server.keepAliveTimeout = 72_000
server.listen(Number(process.argv[3]), '127.0.0.1', () => process.stdout.write('listening\n'))
