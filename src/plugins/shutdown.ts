import type { Server } from 'node:http'
import { Server as NetServer } from 'node:net'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { HttpProblem } from '../lib/problem.js'

/**
 * Where the process is on its way out (boot.ts drives it on SIGTERM):
 * - `begin()`: readiness turns red so load balancers that probe it stop sending; requests
 *   are still served as before, keep-alive included;
 * - `drain()`, after SHUTDOWN_DELAY_MS: see below;
 * - once the app closes (Fastify's preClose), every new request answers 503.
 */
export interface Shutdown {
  readonly started: boolean
  /** The listener is closed and open connections are finishing (`drain()` began). */
  readonly draining: boolean
  begin(): void
  drain(server: Server, idleMs: number): Promise<void>
  /** Runs `listener` when draining begins: long-lived answers (event streams) end then, so their connections can close. */
  onDrain(listener: () => void): void
}

declare module 'fastify' {
  interface FastifyInstance {
    shutdown: Shutdown
  }
}

/** The 503 for a request that reaches a process on its way out. */
export const shuttingDownProblem = (detail: string, extra: ConstructorParameters<typeof HttpProblem>[3] = {}) =>
  new HttpProblem(503, 'SHUTTING_DOWN', detail, { retryAfterSeconds: 5, ...extra })

async function shutdownPlugin(app: FastifyInstance) {
  let started = false
  let draining = false
  let closing = false
  const drainListeners: Array<() => void> = []

  app.decorate<Shutdown>('shutdown', {
    get started() {
      return started
    },
    get draining() {
      return draining || closing
    },
    begin() {
      started = true
    },
    /**
     * Stops accepting connections, and lets the open ones finish rather than cutting them:
     * - the listener closes, so a load balancer's next new connection is refused, which
     *   nginx retries on another replica for any method (nothing was sent);
     * - a request arriving on a connection already open is served as usual, and every
     *   answer from now on closes its connection (never a 503: for a POST that would be a
     *   failed request nobody retries);
     * - connections left idle are for their clients to close (nginx's keepalive_timeout
     *   is shorter than `idleMs`); any still idle after `idleMs` are closed then. Closing
     *   them at once, as http.Server#close does, races a request being sent on them.
     */
    async drain(server, idleMs) {
      started = true
      draining = true
      const drained = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()))
      app.log.info('draining: no new connections; open ones finish')
      for (const listener of drainListeners) listener()
      const timer = setTimeout(() => server.closeIdleConnections(), idleMs)
      await drained
      clearTimeout(timer)
    },
    onDrain(listener) {
      drainListeners.push(listener)
    }
  })

  app.addHook('preClose', async () => {
    started = true
    closing = true
  })
  // Callback hooks: these run on every request, and an async hook costs a promise each.
  app.addHook('onRequest', (_request, _reply, done) => {
    done(closing ? shuttingDownProblem('the service is shutting down; retry on another instance') : undefined)
  })
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining || closing) reply.header('Connection', 'close')
    done(null, payload)
  })
}

export default fp(shutdownPlugin, { name: 'shutdown', fastify: '5.x' })
