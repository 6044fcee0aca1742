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
 * The process logger. Its lines are written as they are logged, one `write` each (pino's
 * `sync: true`), as node writes `process.stdout` to a pipe or file on Linux; pretty
 * output (LOG_PRETTY) goes through pino-pretty's worker instead.
 *
 * Not pino's asynchronous writer: it hands batches of lines to libuv's thread pool, and
 * each hand-off puts a thread to sleep and wakes it, and the event loop after it. Side by
 * side on a lookup by id (bench), that was 0.15 context switches a request, against 0.03
 * (the floor's) with one write a line, a cheap system call more; and 1.5–3.5 µs more CPU:
 * writing each line at once is 1–4 % more throughput, with nothing held in memory that a
 * crash could lose. (pino's writer also measures its whole pending batch again for every
 * line it adds.) The trade: when whatever reads the service's stdout stops reading and the
 * pipe fills, the service waits for it, as console.log would, rather than buffering
 * without bound.
 */
export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'LOG_PRETTY'>, fd = 1) {
  const options = loggerOptions(config)
  return config.LOG_PRETTY ? pino(options) : pino(options, pino.destination({ fd, sync: true }))
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
