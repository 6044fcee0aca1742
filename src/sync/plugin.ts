import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { runPeriodically } from '../lib/periodic.js'
import type { AnyResource } from '../resources/engine/define.js'
import { changeFeed, type ChangeFeed } from './changes.js'
import changesRoutes from './changes-routes.js'
import eventsRoutes from './events-routes.js'
import { createHub, type Hub } from './hub.js'
import { createTicketStore } from './tickets.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** GET /changes' reads of the change log, and its reaper (changes.ts). */
    changeFeed: ChangeFeed
    /** GET /events' streams on this instance (hub.ts). */
    events: Hub
  }
}

/** Expired changes and tickets are deleted this often, a batch at a time, by every instance. */
const REAP_EVERY_MS = 10 * 60_000

/**
 * Sync for clients that keep a copy: GET /changes over the change log of every resource,
 * GET /events pushing the same changes as they commit, and the reapers of the log and of
 * the tickets. LISTEN needs a session: with a pooler in front, it goes to `listenUrl`
 * (MIGRATION_DATABASE_URL, the direct way in).
 */
async function syncPlugin(app: FastifyInstance, options: { resources: readonly AnyResource[]; listenUrl: string }) {
  const { config } = app
  const feed = changeFeed(app.db, options.resources, { retentionDays: config.SYNC_RETENTION_DAYS })
  const tickets = createTicketStore(app.db)
  const hub = createHub({ listenUrl: options.listenUrl, db: app.db, feed, log: app.log, bufferBytes: config.EVENTS_BUFFER_BYTES, retryMs: 1000 })
  app.decorate('changeFeed', feed)
  app.decorate('events', hub)
  runPeriodically(app, 'expired changes', REAP_EVERY_MS, () => feed.reap())
  runPeriodically(app, 'expired event tickets', REAP_EVERY_MS, () => tickets.reap())
  // Streams end when the instance starts draining (clients reconnect elsewhere), and at the latest as it closes.
  app.shutdown.onDrain(() => hub.closeAll())
  app.addHook('preClose', async () => hub.close())
  await app.register(changesRoutes, { resources: options.resources, feed })
  await app.register(eventsRoutes, { feed, hub, tickets })
}

export default fp(syncPlugin, { name: 'sync', fastify: '5.x', dependencies: ['db', 'auth', 'shutdown', 'resources'] })
