import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import { HttpProblem, PROBLEM_CONTENT_TYPE, badRequest } from '../lib/problem.js'
import { checkHost } from '../lib/urls.js'
import { sendProblem } from './errors.js'

/**
 * Answers for requests that never reach a route, so that every 4xx and 5xx the process
 * writes is problem+json and every request gets exactly one answer: malformed requests
 * Node's HTTP parser rejects (400, 431 for oversized headers, 408 for a request that took
 * too long), a body framed in a way that cannot be trusted (400, then the connection is
 * closed), URLs the router cannot decode (400) or whose parameter is too long (414), a
 * path that exists with another method (405 with `Allow`), CONNECT (405), and a missing
 * or malformed Host (400).
 */

/** How much of a body a client may still send, and for how long, after an answer that ends its connection. */
const LINGER_BYTES = 8 * 1024 * 1024
const LINGER_MS = 5000
/** How long a CONNECT's socket stays open after its 405, for the client to read it. */
const CONNECT_LINGER_MS = 2000

/** Sockets that already have their last answer and are being read to the end: nothing more may be written on them, nor any request after it run. */
const answered = new WeakSet<Socket>()
/**
 * The last request on a socket whose answer is not finished. When it was received whole,
 * a parser error is about a request pipelined behind it, and writing that error now would
 * be read as its answer; when it is still being received, the error is its own answer.
 */
const kPending = Symbol('the request whose answer is pending')
type Tracked = Socket & { [kPending]?: IncomingMessage | undefined }

/** A raw problem+json answer, for the places that write to the socket themselves. */
const rawProblem = (status: number, code: string, detail: string, headers = '') => {
  // No request was parsed, so no id was given: a new one, for the client to quote.
  const requestId = randomUUID()
  const body = JSON.stringify({ type: 'about:blank', title: STATUS_CODES[status], status, detail, code, request_id: requestId })
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${headers}X-Request-Id: ${requestId}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
}

/** For Fastify's `clientErrorHandler`: the parser's errors, written straight to the socket. */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed || answered.has(socket) || (socket as Tracked)[kPending]?.complete) {
    socket.destroy()
    return
  }
  const [status, code, detail] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'REQUEST_TIMEOUT', 'the request was not received in time']
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'HEADERS_TOO_LARGE', 'the request line and headers are too large']
        : [400, 'MALFORMED_REQUEST', 'the request is not valid HTTP/1.1']
  if (socket.writable) socket.write(rawProblem(status, code, detail))
  socket.destroy()
}

/** For Fastify's `frameworkErrors`: what the router cannot route. */
export const frameworkErrors: NonNullable<FastifyServerOptions['frameworkErrors']> = (error, request, reply) => {
  const problem =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new HttpProblem(414, 'URI_TOO_LONG', 'a path segment is too long')
      : error.code === 'FST_ERR_BAD_URL'
        ? new HttpProblem(400, 'BAD_URL', 'the URL is not valid (a malformed percent-encoding?)')
        : new HttpProblem(500, 'INTERNAL_ERROR', 'the server failed to handle the request; it has been logged')
  void sendProblem(request, reply as FastifyReply, problem)
}

/**
 * After an answer that closes the connection before the request's body was read (a 413,
 * a bad framing), the rest of the body is read and dropped, up to LINGER_BYTES or
 * LINGER_MS, and only then is the connection closed. Closing while the client still
 * sends makes the kernel answer with a reset, and the client's write fails (EPIPE)
 * before it reads the answer; shutting only our side first, as nginx's lingering close
 * does, is not enough either: Node's own client gives up on a connection the server has
 * shut while it is still sending. Node closes such a connection with the socket's
 * destroySoon() once the answer is out, so that is where the wait goes in.
 */
function drainBeforeClosing(request: IncomingMessage) {
  const socket = request.socket
  // (A request injected by a test has a socket of its own making, without destroySoon.)
  if (answered.has(socket) || typeof socket.destroySoon !== 'function') return
  answered.add(socket)
  const closeSoon = socket.destroySoon.bind(socket)
  socket.destroySoon = () => {
    if (request.complete) return closeSoon()
    let bytes = 0
    const cut = () => {
      clearTimeout(timer)
      socket.destroy()
    }
    const timer = setTimeout(cut, LINGER_MS)
    request.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > LINGER_BYTES) cut()
    })
    request.once('end', () => {
      clearTimeout(timer)
      closeSoon()
    })
    request.resume()
  }
}

/**
 * RFC 9112 §6.1 and §6.3: a request whose Transfer-Encoding does not end in `chunked`, or
 * that also carries Content-Length, or an HTTP/1.0 request with Transfer-Encoding, has a
 * body whose end cannot be known; Node's parser reads such a body until the connection
 * closes. It is answered 400 before any route, and the connection is closed.
 */
function badFraming(request: FastifyRequest): boolean {
  const encoding = request.headers['transfer-encoding']
  if (encoding === undefined) return false
  const last = encoding.slice(encoding.lastIndexOf(',') + 1).trim().toLowerCase()
  return last !== 'chunked' || request.headers['content-length'] !== undefined || request.raw.httpVersion === '1.0'
}

async function httpGuardsPlugin(app: FastifyInstance) {
  // CONNECT never reaches Fastify: Node hands it to 'connect' listeners, or drops the
  // connection without a word when there are none. This is not a proxy.
  // Past the answer, no HTTP timeout watches such a socket: it is closed here.
  app.server.on('connect', (_request: IncomingMessage, socket: Socket) => {
    socket.on('error', () => {})
    socket.end(rawProblem(405, 'METHOD_NOT_ALLOWED', 'CONNECT is not supported: this service is not a proxy', 'Allow: \r\n'))
    socket.setTimeout(CONNECT_LINGER_MS, () => socket.destroy())
    socket.once('end', () => socket.destroy())
    socket.resume()
  })

  const checkHostToo = !app.config.PUBLIC_BASE_URL
  app.addHook('onRequest', (request, reply, done) => {
    const socket = request.raw.socket
    // A request pipelined behind one whose answer closes the connection is never run:
    // its answer could not be sent, and a write the client never hears of looks lost.
    if (answered.has(socket)) {
      socket.destroy()
      return done(new HttpProblem(400, 'CONNECTION_CLOSING', 'sent after a request whose answer closed the connection'))
    }
    ;(socket as Tracked)[kPending] = request.raw
    if (badFraming(request)) {
      // Where such a body ends is unknowable: the connection is closed after the answer.
      drainBeforeClosing(request.raw)
      reply.header('Connection', 'close')
      return done(badRequest('INVALID_FRAMING', 'Transfer-Encoding must end in chunked, and not come with Content-Length (RFC 9112); the connection is closed'))
    }
    // Node answers a missing Host itself, with an empty 400, unless told not to
    // (requireHostHeader: false, app.ts); it is answered here instead.
    if (request.raw.httpVersionMajor === 1 && request.raw.httpVersionMinor === 1 && request.headers.host === undefined) {
      return done(new HttpProblem(400, 'MISSING_HOST', 'an HTTP/1.1 request needs a Host header'))
    }
    // With PUBLIC_BASE_URL set, the request's Host never reaches a URL we return.
    if (checkHostToo) {
      try {
        checkHost(request)
      } catch (error) {
        return done(error as Error)
      }
    }
    done()
  })

  // An answer sent before the body was read (Fastify's 413, or any answer to a client
  // that asked for `Connection: close`) closes the connection: drain it first.
  app.addHook('onResponse', (request, _reply, done) => {
    const socket = request.raw.socket as Tracked | null
    if (socket && socket[kPending] === request.raw) socket[kPending] = undefined
    done()
  })
  app.addHook('onSend', (request, reply, payload, done) => {
    if (!request.raw.complete && (reply.getHeader('connection') === 'close' || !reply.raw.shouldKeepAlive)) drainBeforeClosing(request.raw)
    done(null, payload)
  })
}

export default fp(httpGuardsPlugin, { name: 'http-guards', fastify: '5.x', dependencies: ['errors', '@fastify/env'] })
