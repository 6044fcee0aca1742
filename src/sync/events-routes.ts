import { fastifySSE } from '@fastify/sse'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { onRequestHookHandler } from 'fastify'
import { operationSecurity } from '../accounts/plugin.js'
import { HttpProblem, jsonResponse, problemResponses, tooManyRequests, unauthenticated } from '../lib/problem.js'
import { loggableUrl } from '../lib/logger.js'
import { baseUrl } from '../lib/urls.js'
import type { ChangeFeed } from './changes.js'
import { STREAMS_PER_OWNER, retryHint, type Hub } from './hub.js'
import { TICKET_SECONDS, type TicketStore } from './tickets.js'

/** How long after the end of a stream a client should wait before it reconnects. */
const RETRY_MS = 1000
/** A stream ended with unsent bytes is cut after this long: a client that stopped reading does not hold its socket. */
const END_GRACE_MS = 10_000

const CURSOR = Type.String({ minLength: 1, maxLength: 65_536, description: 'Opaque cursor from GET /changes or an earlier event' })

/**
 * `GET /events`: the caller's changes as Server-Sent Events, pushed as they commit
 * (hub.ts), and `POST /events/tickets` for browsers, whose EventSource cannot send a token.
 * The stream is written by @fastify/sse (headers, heartbeat comments, the connection's end).
 */
const eventsRoutes: FastifyPluginAsyncTypebox<{ feed: ChangeFeed; hub: Hub; tickets: TicketStore }> = async (app, { feed, hub, tickets }) => {
  const { config } = app
  await app.register(fastifySSE, { heartbeatInterval: config.EVENTS_HEARTBEAT_MS })
  const security = operationSecurity(config.AUTH_MODE)
  /** Streams being opened (waiting on the database): they count against EVENTS_MAX_STREAMS too. */
  let opening = 0

  app.post(
    '/events/tickets',
    {
      onRequest: [app.auth.authenticate, app.auth.quota.onRequest],
      onResponse: app.auth.recordUse,
      schema: {
        tags: ['sync'],
        operationId: 'createEventTicket',
        summary: 'A ticket to open GET /events with',
        description: `For EventSource, which cannot send Authorization: pass it as \`?ticket=\`. Good once, for ${TICKET_SECONDS} seconds; the stream then lasts as long as the token it was made with.`,
        security,
        response: {
          201: jsonResponse(Type.Object({ ticket: Type.String(), expires_at: Type.String({ format: 'date-time' }) }, { additionalProperties: false }), 'The ticket', ['Cache-Control']),
          ...problemResponses(401, 503)
        }
      }
    },
    async (request, reply) => {
      const { userId, tokenId } = await app.auth.caller(request)
      const issued = await tickets.issue(userId, tokenId)
      return reply.code(201).header('Cache-Control', 'no-store').send({ ticket: issued.ticket, expires_at: issued.expiresAt })
    }
  )

  // A ticket proves who the caller is by itself; without one, a token (or the local user) as on every route.
  const authenticate: onRequestHookHandler = function (request, reply, done) {
    if ((request.query as { ticket?: unknown }).ticket !== undefined) return done()
    return app.auth.authenticate.call(this, request, reply, done)
  }

  app.get(
    '/events',
    {
      sse: 'manual',
      // Open for as long as the client listens: not a request under way (plugins/load-shedding.ts).
      config: { longLived: true },
      onRequest: [authenticate, app.auth.quota.onRequest],
      schema: {
        tags: ['sync'],
        operationId: 'streamEvents',
        summary: 'Changes as they happen (Server-Sent Events)',
        description:
          'Each change is an event `change` whose data is a change as in GET /changes and whose id is a cursor: reconnecting with `Last-Event-ID` ' +
          '(EventSource does) or `?cursor=` resumes right after it. Without either, the stream starts now, with an event `ready` carrying the cursor. ' +
          `A comment line every EVENTS_HEARTBEAT_MS (15 s). A client that falls more than EVENTS_BUFFER_BYTES behind gets an event \`resync\` ` +
          '(its data: the cursor to carry on from with GET /changes) and the stream ends; so does it when the token is revoked, and, with a `retry:` hint, ' +
          'when the instance shuts down.',
        security,
        querystring: Type.Object({
          cursor: Type.Optional(CURSOR),
          ticket: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'From POST /events/tickets, instead of Authorization' }))
        }),
        headers: Type.Object({ 'last-event-id': Type.Optional(CURSOR) }),
        response: {
          200: { description: 'An event stream', content: { 'text/event-stream': { schema: Type.String() } } },
          ...problemResponses(400, 401, 410, 429, 503)
        }
      }
    },
    async (request, reply) => {
      const { ticket, cursor: queryCursor } = request.query
      // The cheap refusals first, before a ticket is spent on them.
      if (config.EVENTS_MAX_STREAMS > 0 && hub.streams + opening >= config.EVENTS_MAX_STREAMS) {
        throw new HttpProblem(503, 'TOO_MANY_STREAMS', 'this instance holds as many event streams as it may; try again shortly', { retryAfterSeconds: 5 })
      }
      const raw = reply.raw
      // Draining: the client is handed to another instance at once (a new connection, which the listener no longer takes).
      if (app.shutdown.draining) {
        reply.sse.keepAlive()
        reply.header('Connection', 'close')
        reply.sse.sendHeaders()
        raw.end(retryHint(RETRY_MS))
        return
      }
      opening++
      try {
        if (ticket !== undefined) {
          const owner = await tickets.redeem(ticket)
          if (owner === undefined) throw unauthenticated(true, 'invalid_token')
          request.owner = owner
        }
        // The header EventSource sends on a reconnect is newer than the cursor in the URL it reuses.
        const start = await feed.start(request.owner, request.headers['last-event-id'] || queryCursor)
        if (start === null) throw unauthenticated(true)
        if (hub.streamsOf(start.ownerId) >= STREAMS_PER_OWNER) throw tooManyRequests(`at most ${STREAMS_PER_OWNER} event streams at once per user and instance`, 5)
        // Notifications come before the first fetch (hub.add), so none is missed in between.
        await hub.listen()
        // The client may have left while this request waited: nothing to register then.
        if (raw.destroyed || !reply.sse.isConnected) return

        const base = baseUrl(request, config.PUBLIC_BASE_URL)
        const started = performance.now()
        reply.sse.keepAlive()
        reply.sse.sendHeaders()
        raw.write(`${retryHint(RETRY_MS)}event: ready\nid: ${start.cursor}\ndata: ${JSON.stringify({ cursor: start.cursor })}\n\n`)
        const pushing = hub.add({
          owner: request.owner,
          ownerId: start.ownerId,
          cursor: start.cursor,
          urlBase: (resource) => `${base}${resource.path}/`,
          buffered: () => raw.writableLength,
          write: (text) => void raw.write(text),
          end(last) {
            if (last !== undefined && !raw.writableEnded && !raw.destroyed) raw.write(last)
            reply.sse.close()
            // The connection is left open for its client to reuse or close: cutting it here
            // races a proxy sending its next request down it (a 502 in the rolling restart).
            // A reconnect that comes back on it while this instance drains is handed on at
            // once, with Connection: close. A client that does not read must not hold the exit.
            setTimeout(() => raw.destroy(), app.shutdown.started ? 1000 : END_GRACE_MS).unref()
          }
        })
        raw.on('drain', pushing.wake)
        reply.sse.onClose(() => {
          pushing.remove()
          request.log.info({ method: request.method, url: loggableUrl(request), route: '/events', status: 200, ms: Math.round(performance.now() - started) }, 'request')
        })
      } finally {
        opening--
      }
    }
  )
}

export default eventsRoutes
