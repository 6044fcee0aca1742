/**
 * The floor `make bench` measures the service against: node:http and a pg pool, one named
 * prepared statement per query, JSON.stringify, no framework, no validation, no logging,
 * no headers beyond Content-Type. The list uses the API's default order and the index
 * that serves it (migrations/0003). Plain JavaScript, so nothing compiles or loads
 * beyond node and pg. Usage: node baseline-server.mjs <database url> <port>
 */
import { createServer } from 'node:http'
import pg from 'pg'

const pool = new pg.Pool({ connectionString: process.argv[2], max: 10 })
const columns = 'id, title, description, completed, "order", due_date, created_at, updated_at'
const byId = { name: 'floor_by_id', text: `SELECT ${columns} FROM todos WHERE id = $1` }
const page = { name: 'floor_page', text: `SELECT ${columns} FROM todos ORDER BY coalesce("order"::bigint, 2147483648) ASC, id ASC LIMIT $1` }
const insert = { name: 'floor_insert', text: `INSERT INTO todos (title) VALUES ($1) RETURNING ${columns}` }

const send = (response, status, body) => response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))

const server = createServer((request, response) => {
  const url = request.url ?? '/'
  const one = /^\/todos\/(\d+)$/.exec(url)
  if (one && request.method === 'GET') {
    pool.query({ ...byId, values: [Number(one[1])] }).then(({ rows }) => (rows[0] ? send(response, 200, rows[0]) : send(response, 404, {})), () => send(response, 500, {}))
  } else if (url.startsWith('/todos?') && request.method === 'GET') {
    const limit = Number(new URLSearchParams(url.slice(7)).get('limit') ?? 100)
    pool.query({ ...page, values: [limit] }).then(({ rows }) => send(response, 200, rows), () => send(response, 500, {}))
  } else if (url === '/todos' && request.method === 'POST') {
    let body = ''
    request.setEncoding('utf8').on('data', (chunk) => (body += chunk)).on('end', () => {
      let title
      try {
        title = JSON.parse(body).title
      } catch {
        return send(response, 400, {})
      }
      pool.query({ ...insert, values: [title] }).then(({ rows }) => send(response, 201, rows[0]), () => send(response, 500, {}))
    })
  } else {
    send(response, 404, {})
  }
})
server.keepAliveTimeout = 72_000
server.listen(Number(process.argv[3]), '127.0.0.1', () => process.stdout.write('listening\n'))
