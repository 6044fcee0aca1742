import pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import { destroyConnection } from '../db/pg-adapter.js'
import { errorLine } from '../lib/logger.js'
import { databaseUnavailable } from '../lib/problem.js'

const RECONNECT_MAX_MS = 10_000
/** How long the connection has to answer a check (`answers()`). */
const CHECK_MS = 3000

/**
 * The one LISTEN connection of a process (hub.ts): `LISTEN changes`, each notification's
 * payload an owner id. Reopened with backoff when it ends; a connection that stopped
 * answering (a NAT or a load balancer forgot it, and no FIN came) is found by `answers()`
 * and cut. Keepalive probes start after 15 s of silence.
 */
export function createListener(options: {
  url: string
  log: FastifyBaseLogger
  onNotification(ownerId: number): void
  /** After a reconnect: what was notified meanwhile is lost. */
  onReconnect(): void
  /** Whether anyone still needs it (no reconnect otherwise). */
  wanted(): boolean
}) {
  const { log } = options
  let client: pg.Client | undefined
  let connecting: Promise<void> | undefined
  let closed = false
  let delay = 500
  let timer: NodeJS.Timeout | undefined

  function listen(): Promise<void> {
    if (closed) return Promise.reject(databaseUnavailable('this instance is shutting down'))
    if (client !== undefined) return Promise.resolve()
    connecting ??= (async () => {
      const next = new pg.Client({ connectionString: options.url, application_name: 'todos-api events', keepAlive: true, keepAliveInitialDelayMillis: 15_000, connectionTimeoutMillis: 5000 })
      next.on('error', (error) => log.warn({ reason: errorLine(error) }, 'event listener connection failed'))
      try {
        await next.connect()
        await next.query('LISTEN changes')
      } catch (error) {
        await next.end().catch(() => {})
        throw error
      }
      if (closed) {
        await next.end().catch(() => {})
        throw databaseUnavailable('this instance is shutting down')
      }
      next.on('notification', (message) => options.onNotification(Number(message.payload)))
      next.once('end', () => {
        if (client === next) client = undefined
        if (!closed) reconnectSoon()
      })
      client = next
      delay = 500
    })().finally(() => {
      connecting = undefined
    })
    return connecting
  }

  function reconnectSoon() {
    if (closed || timer !== undefined || !options.wanted()) return
    timer = setTimeout(() => {
      timer = undefined
      listen().then(options.onReconnect, () => reconnectSoon())
    }, delay)
    delay = Math.min(delay * 2, RECONNECT_MAX_MS)
  }

  return {
    listen,
    reconnectSoon,

    /** Whether the connection answers a statement within CHECK_MS; a silent one is cut (its 'end' reconnects). */
    async answers(): Promise<boolean> {
      const current = client
      if (current === undefined) return false
      let check: NodeJS.Timeout | undefined
      const timeout = new Promise<false>((resolve) => (check = setTimeout(() => resolve(false), CHECK_MS)))
      const answered = await Promise.race([current.query('SELECT 1').then(() => true, () => false), timeout])
      clearTimeout(check)
      if (!answered && client === current) {
        client = undefined
        destroyConnection(current)
      }
      return answered
    },

    async close(): Promise<void> {
      closed = true
      clearTimeout(timer)
      await connecting?.catch(() => {})
      const current = client
      if (current === undefined) return
      // A connection that stopped answering would never finish a polite goodbye: it is cut after a second.
      let wait: NodeJS.Timeout | undefined
      const ended = await Promise.race([current.end().then(() => true, () => true), new Promise<false>((resolve) => (wait = setTimeout(() => resolve(false), 1000)))])
      clearTimeout(wait)
      if (!ended) destroyConnection(current)
    }
  }
}
