import { pino, type LoggerOptions } from 'pino'
import type { Config } from './config.js'

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
 * The process logger: JSON lines on stdout (or `fd`), or pretty output through
 * pino-pretty's worker (LOG_PRETTY).
 *
 * The lines logged during one turn of the event loop are written together at its end,
 * in one `write` (`endOfTurnWriter`). Measured side by side on a lookup by id (bench):
 * - pino's asynchronous writer hands each batch to libuv's thread pool, which puts a
 *   thread to sleep and wakes it, and the event loop after it: 0.15 context switches a
 *   request, against 0.03 (the floor's) otherwise;
 * - one synchronous `write` a line instead: 1.5–3.5 µs of CPU a request less, 1–4 % more
 *   throughput;
 * - one `write` a turn (about 8 lines under load): 7.5 µs less again, +10 % on the lookup
 *   and +5 % on `POST /todos`; against the asynchronous writer, +11 % on the lookup.
 * A line is never held past the turn that logged it (nor past `process.exit`). The
 * trade, as with console.log: when whatever reads stdout stops reading and the pipe
 * fills, the service waits for it, rather than buffering without bound.
 */
export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'LOG_PRETTY'>, fd = 1) {
  const options = loggerOptions(config)
  return config.LOG_PRETTY ? pino(options) : pino(options, endOfTurnWriter(pino.destination({ fd, sync: true })))
}

/** Lines a turn may gather before they are written at once. */
const MAX_BATCH = 1000

/**
 * A pino destination that gathers lines and hands them to `destination` (pino's
 * synchronous writer: partial writes, EAGAIN and EPIPE are its business) as one string
 * when the event loop's turn ends (setImmediate), when MAX_BATCH lines wait, on
 * `flush`/`flushSync`, and when the process exits. An array joined once, rather than
 * pino's own buffering: its writer measures the whole pending batch again for every
 * line it adds.
 */
export function endOfTurnWriter(destination: ReturnType<typeof pino.destination>) {
  let lines: string[] = []
  const drain = () => {
    if (lines.length === 0) return
    const text = lines.join('')
    lines = []
    destination.write(text)
  }
  process.on('exit', drain)
  return {
    write(line: string) {
      const waiting = lines.push(line)
      if (waiting === 1) setImmediate(drain)
      else if (waiting >= MAX_BATCH) drain()
      return true
    },
    flush(callback: (error?: Error) => void) {
      drain()
      callback()
    },
    flushSync() {
      drain()
      destination.flushSync()
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
