/**
 * The floor to compare the service with: node:http and a pg pool, the same queries, no
 * framework, no validation, no logging. Prints its port on stdout.
 */
import { createServer } from 'node:http'
import pg from 'pg'

const pool = new pg.Pool({ connectionString: process.argv[2], max: 10 })
const columns = 'id, title, description, completed, "order", due_date, created_at, updated_at, version'

const server = createServer(async (request, response) => {
  try {
    const url = new URL(request.url ?? '/', 'http://x')
    const one = /^\/todos\/(\d+)$/.exec(url.pathname)
    let body: unknown
    if (one) {
      const { rows } = await pool.query(`SELECT ${columns} FROM todos WHERE id = $1`, [Number(one[1])])
      body = rows[0]
    } else if (url.pathname === '/todos') {
      const limit = Number(url.searchParams.get('limit') ?? 100)
      const { rows } = await pool.query(`SELECT ${columns} FROM todos ORDER BY "order" ASC NULLS LAST, id ASC LIMIT $1`, [limit])
      body = rows
    } else {
      response.writeHead(404).end()
      return
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  } catch {
    response.writeHead(500).end()
  }
})
server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`)
})
