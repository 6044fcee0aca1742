import type { FastifyInstance, InjectOptions } from 'fastify'

type Json = Record<string, unknown>

/** The calls both clients offer, over their own `send`. */
function verbs<A extends { statusCode: number; body: string; json(): any }>(send: (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown, headers?: Record<string, string>) => Promise<A>) {
  return {
    get: (url: string, headers?: Record<string, string>) => send('GET', url, undefined, headers),
    post: (url: string, body: unknown, headers?: Record<string, string>) => send('POST', url, body, headers),
    patch: (url: string, body: unknown, headers?: Record<string, string>) => send('PATCH', url, body, headers),
    delete: (url: string, headers?: Record<string, string>) => send('DELETE', url, undefined, headers),
    /** Creates one item and returns its JSON. */
    async create(url: string, body: Json): Promise<Json & { id: number; url: string }> {
      const response = await send('POST', url, body)
      if (response.statusCode !== 201) throw new Error(`create failed: ${response.statusCode} ${response.body}`)
      return response.json()
    }
  }
}

/** Small wrappers over `app.inject` for JSON requests. */
export function jsonClient(app: FastifyInstance) {
  const send = (method: InjectOptions['method'], url: string, body?: unknown, headers: Record<string, string> = {}) =>
    app.inject({
      method,
      url,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) })
    })
  return verbs(send)
}

/** An answer over real HTTP, shaped like `inject`'s. */
export interface HttpAnswer {
  statusCode: number
  headers: Record<string, string>
  body: string
  json(): any
}

/** The same calls as jsonClient's, over real HTTP to `base` (`http://127.0.0.1:port`), with `headers` on every request. */
export function httpClient(base: string, defaults: Record<string, string> = {}) {
  const send = async (method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> => {
    const response = await fetch(`${base}${url}`, {
      method,
      headers: { ...defaults, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) })
    })
    const text = await response.text()
    return { statusCode: response.status, headers: Object.fromEntries(response.headers), body: text, json: () => JSON.parse(text) }
  }
  return verbs(send)
}

export type HttpClient = ReturnType<typeof httpClient>

/** The URL of the next page from a `Link` header, as a path for `inject`. */
export function nextLink(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header.join(', ') : header
  const match = value === undefined ? null : /<([^>]+)>;\s*rel="next"/.exec(value)
  if (!match?.[1]) return undefined
  const url = new URL(match[1])
  return `${url.pathname}${url.search}`
}

/** Follows `Link: rel="next"` from `first` to the last page; `between` runs after each page. */
export async function walk<T>(app: FastifyInstance, first: string, between: () => Promise<void> = async () => {}) {
  const rows: T[] = []
  let pages = 0
  for (let url: string | undefined = first; url !== undefined; pages++) {
    const response = await app.inject(url)
    if (response.statusCode !== 200) throw new Error(`${url}: ${response.statusCode} ${response.body}`)
    rows.push(...(response.json() as T[]))
    url = nextLink(response.headers.link)
    await between()
  }
  return { rows, pages }
}

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
  /** Milliseconds from connecting to the end of the answer. */
  ms: number
}

/**
 * Sends bytes as they are (malformed requests included) to `port` on 127.0.0.1 and reads
 * until the server closes the connection or `timeoutMs` passes. `chunks` after the first
 * are written `gapMs` apart (a slow client).
 */
export async function rawRequest(port: number, chunks: Array<string | Buffer>, { gapMs = 0, timeoutMs = 10_000 } = {}): Promise<RawResponse> {
  const { connect } = await import('node:net')
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const received: Buffer[] = []
    let timer: NodeJS.Timeout | undefined
    const finish = () => {
      clearTimeout(timer)
      clearTimeout(limit)
      const text = Buffer.concat(received).toString('utf8')
      const [head = '', ...rest] = text.split('\r\n\r\n')
      const [statusLine = '', ...lines] = head.split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim()
      resolve({ status: Number(statusLine.split(' ')[1] ?? 0), headers, body: rest.join('\r\n\r\n'), ms: Date.now() - started })
    }
    const limit = setTimeout(() => socket.destroy(), timeoutMs)
    socket.on('data', (chunk) => received.push(chunk))
    socket.on('close', finish)
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' || error.code === 'EPIPE' ? undefined : reject(error)))
    socket.on('connect', () => {
      const [first, ...later] = chunks
      if (first !== undefined) socket.write(first)
      const next = () => {
        const chunk = later.shift()
        if (chunk === undefined || socket.destroyed) return
        socket.write(chunk)
        timer = setTimeout(next, gapMs)
      }
      timer = setTimeout(next, gapMs)
    })
  })
}

/**
 * `count` keep-alive connections to `port` on 127.0.0.1. `send` writes one request on each
 * in a single synchronous loop and resolves with their answers: a server in this process
 * reads every one of them in the same poll of its sockets, so they are one turn of its
 * event loop however loaded the machine is (fetch spreads its writes over several turns).
 */
export async function turnClients(port: number, count: number) {
  const { connect } = await import('node:net')
  const sockets = await Promise.all(
    Array.from({ length: count }, () => new Promise<import('node:net').Socket>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(socket))
      socket.once('error', reject)
    }))
  )
  const answer = (socket: import('node:net').Socket) =>
    new Promise<RawResponse>((resolve, reject) => {
      const started = Date.now()
      let received = Buffer.alloc(0)
      const onData = (chunk: Buffer) => {
        received = Buffer.concat([received, chunk])
        const end = received.indexOf('\r\n\r\n')
        if (end < 0) return
        const [statusLine = '', ...lines] = received.subarray(0, end).toString('latin1').split('\r\n')
        const headers: Record<string, string> = {}
        for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim()
        const length = Number(headers['content-length'] ?? Number.NaN)
        if (!Number.isInteger(length)) return fail(new Error(`an answer without Content-Length: ${statusLine}`))
        if (received.length < end + 4 + length) return
        socket.off('data', onData).off('error', fail).off('close', closed)
        resolve({ status: Number(statusLine.split(' ')[1] ?? 0), headers, body: received.subarray(end + 4, end + 4 + length).toString('utf8'), ms: Date.now() - started })
      }
      const fail = (error: Error) => {
        socket.off('data', onData).off('error', fail).off('close', closed)
        reject(error)
      }
      const closed = () => fail(new Error('the server closed the connection before answering'))
      socket.on('data', onData).on('error', fail).on('close', closed)
    })
  const request = (method: string, path: string, body?: unknown) => {
    const payload = body === undefined ? '' : JSON.stringify(body)
    const head = [`${method} ${path} HTTP/1.1`, 'host: 127.0.0.1', 'connection: keep-alive']
    if (body !== undefined) head.push('content-type: application/json', `content-length: ${Buffer.byteLength(payload)}`)
    return `${head.join('\r\n')}\r\n\r\n${payload}`
  }
  return {
    /** Writes `requests[i]` on connection i, all in one loop, and waits for every answer. */
    send(requests: Array<{ method: string; path: string; body?: unknown }>): Promise<RawResponse[]> {
      if (requests.length > sockets.length) throw new Error(`${requests.length} requests for ${sockets.length} connections`)
      const answers = requests.map((_, i) => answer(sockets[i] as import('node:net').Socket))
      for (const [i, { method, path, body }] of requests.entries()) sockets[i]?.write(request(method, path, body))
      return Promise.all(answers)
    },
    close() {
      for (const socket of sockets) socket.destroy()
    }
  }
}
