import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { operationSecurity } from '../accounts/plugin.js'
import { jsonResponse, problemResponses } from '../lib/problem.js'
import { StringEnum } from '../lib/schema.js'
import { baseUrl } from '../lib/urls.js'
import type { AnyResource } from '../resources/engine/define.js'
import { sendJsonText } from '../resources/engine/http.js'
import type { ChangeFeed } from './changes.js'

/** `GET /changes`: the caller's changes since a cursor, for clients that keep a copy (changes.ts). */
const changesRoutes: FastifyPluginAsyncTypebox<{ resources: readonly AnyResource[]; feed: ChangeFeed }> = async (app, { resources, feed }) => {
  app.addHook('onRequest', app.auth.authenticate)
  app.auth.meter(app)
  app.addHook('onResponse', app.auth.recordUse)
  const Change = Type.Object(
    {
      type: StringEnum(resources.map((resource) => resource.singular)),
      id: Type.Integer(),
      deleted: Type.Boolean(),
      data: Type.Union([Type.Object({}, { additionalProperties: true, description: 'The item as GET on its url returns it' }), Type.Null()])
    },
    { additionalProperties: false }
  )
  const ChangesPage = Type.Object(
    {
      changes: Type.Array(Change),
      cursor: Type.String({ description: 'Where to carry on: the next page while `more`, else the next sync' }),
      more: Type.Boolean()
    },
    { additionalProperties: false }
  )

  app.get(
    '/changes',
    {
      schema: {
        tags: ['sync'],
        operationId: 'listChanges',
        summary: 'What changed since a cursor',
        description:
          'Without `cursor`, every item of the caller as a change, in pages; then, with the `cursor` of the last page, what changed after it, ' +
          'each item once in its current state (`data` null and `deleted` true once deleted), ordered by the transaction of its last change. ' +
          'Follow `cursor` while `more` is true; keep the last one for the next sync. A cursor older than SYNC_RETENTION_DAYS, ' +
          "or another caller's, is 410 CURSOR_EXPIRED: sync again from the start.",
        querystring: Type.Object({
          cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 65_536, description: 'Opaque cursor from an earlier answer' })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Changes per page' }))
        }),
        security: operationSecurity(app.config.AUTH_MODE),
        response: { 200: jsonResponse(ChangesPage, 'A page of changes'), ...problemResponses(401, 410) }
      }
    },
    async (request, reply) => {
      const { cursor, limit = 100 } = request.query
      const base = baseUrl(request, app.config.PUBLIC_BASE_URL)
      const page = await feed.page(request.owner, cursor, limit, (resource) => `${base}${resource.path}/`)
      if (page.ownerId === null) await app.auth.assertAuthenticated(request)
      return sendJsonText(reply, JSON.stringify({ changes: page.changes, cursor: page.cursor, more: page.more }))
    }
  )
}

export default changesRoutes
