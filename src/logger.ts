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

export const createLogger = (config: Pick<Config, 'LOG_LEVEL' | 'LOG_PRETTY'>) => pino(loggerOptions(config))

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
