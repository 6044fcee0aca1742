import type { Writable } from 'node:stream'
import { pino, type Logger, type LoggerOptions } from 'pino'
import type { Config } from '../config.js'

export type { Logger }

/**
 * JSON lines for machines; `LOG_PRETTY=true` (make dev) for people. No request object is
 * ever logged (plugins/access-log.ts writes chosen fields), so there are no headers to
 * redact, and no redaction pass on every line.
 */
export function loggerOptions(config: Pick<Config, 'LOG_LEVEL' | 'LOG_PRETTY'>): LoggerOptions {
  return {
    level: config.LOG_LEVEL,
    serializers: { err: safeError },
    ...(config.LOG_PRETTY ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : {})
  }
}

/**
 * The process logger: JSON lines on stdout (or `destination`), or pretty output through
 * pino-pretty's worker (LOG_PRETTY). The lines logged during one turn of the event loop
 * are written together when it ends (`endOfTurnWriter`), through `process.stdout`: to a
 * file node writes synchronously; to a pipe (a container's log) libuv writes at once and
 * queues only what the pipe cannot take yet, so a reader that falls behind never stalls
 * the service. One write a turn costs less than pino's asynchronous writer (a thread
 * woken for every batch) and than a write a line (docs/benchmarks.md has the figures).
 */
export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'LOG_PRETTY'>, destination: Writable = process.stdout) {
  const options = loggerOptions(config)
  return config.LOG_PRETTY ? pino(options) : pino(options, endOfTurnWriter(destination))
}

/** Lines a turn may gather before they are written at once. */
const MAX_LINES_WAITING = 1000
/**
 * The largest write a pipe keeps whole (PIPE_BUF on Linux): the workers of one process
 * (WEB_CONCURRENCY) share its stdout, and a longer write could be interleaved with
 * another worker's, splitting lines.
 */
export const WHOLE_WRITE_BYTES = 4096

// The process is exiting: what waits is written now, and any line logged after (by a
// later 'exit' listener) at once.
const pending = new Set<() => void>()
let exiting = false
process.on('exit', () => {
  exiting = true
  for (const drain of pending) drain()
})

/**
 * A pino destination that gathers lines and writes them to `destination` when the event
 * loop's turn ends (setImmediate), when MAX_LINES_WAITING lines wait, on `flush`/`flushSync`
 * (pino's `fatal` calls it), and when the process exits: joined into writes of at most
 * WHOLE_WRITE_BYTES, each of whole lines (a longer line alone). At most the lines of the
 * turn in progress are lost if the process is killed. An array, rather than pino's own
 * buffer, whose writer measures the whole pending batch again for every line it adds.
 * If the destination fails (EPIPE: nobody reads stdout any more), logging stops, and
 * the service goes on.
 */
export function endOfTurnWriter(destination: Writable) {
  let lines: string[] = []
  let broken = false
  const fail = (error: NodeJS.ErrnoException) => {
    if (broken) return
    broken = true
    lines = []
    if (error.code !== 'EPIPE') process.stderr.write(`log output failed (${error.code ?? error.message}); no more log lines are written\n`)
  }
  destination.on('error', fail)
  const send = (text: string) => {
    try {
      destination.write(text)
    } catch (error) {
      fail(error as NodeJS.ErrnoException) // a file written synchronously throws
    }
  }
  const drain = () => {
    if (lines.length === 0) return
    const batch = lines
    lines = []
    let piece = ''
    let bytes = 0
    for (const line of batch) {
      const size = Buffer.byteLength(line)
      if (bytes > 0 && bytes + size > WHOLE_WRITE_BYTES) {
        send(piece)
        piece = ''
        bytes = 0
      }
      piece += line
      bytes += size
    }
    send(piece)
  }
  pending.add(drain)
  return {
    write(line: string) {
      if (broken) return true
      if (exiting) {
        send(line)
        return true
      }
      const waiting = lines.push(line)
      if (waiting === 1) setImmediate(drain)
      else if (waiting >= MAX_LINES_WAITING) drain()
      return true
    },
    flush(callback: (error?: Error) => void) {
      drain()
      callback()
    },
    flushSync() {
      drain()
    }
  }
}

/**
 * What an error contributes to a log line: its kind, code and message, and for
 * PostgreSQL errors the constraint or column involved. Never the stack (errors.ts logs
 * that at debug level only), never query text or parameters a driver may attach.
 */
export function safeError(error: unknown) {
  if (!(error instanceof Error)) return { message: String(error) }
  const { code, constraint, table, column, statusCode } = error as Error & Record<string, string | number | undefined>
  return { type: error.name, message: error.message, code, statusCode, constraint, table, column }
}

/**
 * An error as one line of text for people: its first line, with the error code (a
 * SQLSTATE or a socket error) when the text does not already carry it. Never the query
 * text or parameters a driver may attach.
 */
export function errorLine(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string }
  const text = (message ?? String(error)).split('\n')[0] ?? ''
  return code && !text.includes(code) ? `${text} (${/^[0-9A-Z]{5}$/.test(code) ? 'SQLSTATE ' : ''}${code})` : text
}

/**
 * A request's URL as logged: one with a GET /events ticket in its query (a credential,
 * good for a minute) is logged without its query. The parsed query is checked, since a
 * client may spell the name with escapes the parser decodes.
 */
export function loggableUrl(request: { url: string; query?: unknown }): string {
  const query = request.query as Record<string, unknown> | null | undefined
  const ticket = (query !== null && typeof query === 'object' && 'ticket' in query) || /ticket/i.test(request.url)
  return ticket ? `${request.url.split('?')[0]}?[redacted]` : request.url
}
