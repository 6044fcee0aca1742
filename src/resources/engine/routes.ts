import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { operationSecurity } from '../../accounts/plugin.js'
import { emptyResponse, jsonResponse, notFound, preconditionFailed, problemResponses, unauthenticated } from '../../lib/problem.js'
import { IdParams, StringEnum, capitalise } from '../../lib/schema.js'
import { baseUrl, withQueryParameter } from '../../lib/urls.js'
import type { AnyResource } from './define.js'
import type { Executor, WriteResult } from './execute.js'
import { etagFor, fingerprint, idempotencyKey, ifNoneMatchHits, parseIfMatch, sendJsonText, trimBodyFields } from './http.js'
import type { Idempotency } from './idempotency.js'
import type {} from '../../lib/metrics.js'

/** A page's size: `limit`, 100 unless asked. */
const PAGE = { default: 100, max: 1000 }
/** What a create or an update may send: past 16 KiB, only with a token proven valid first (accounts/plugin.ts). */
const BODY_LIMIT = 1024 * 1024

/**
 * The routes every resource has, registered once per resource with its path as the
 * prefix: a keyset-paginated list with a `Link` next header, create with `Location` and
 * `ETag` (at most once per Idempotency-Key), conditional reads (304) and writes (412),
 * and deletes. HTTP only: the SQL is the executor's (execute.ts).
 */
const resourceRoutes: FastifyPluginAsyncTypebox<{ resource: AnyResource; executor: Executor; idempotency: Idempotency }> = async (
  app,
  { resource, executor, idempotency }
) => {
  const { singular, plural, path, schemas } = resource
  const Singular = capitalise(singular)
  const Plural = capitalise(plural)
  const tags = [plural]
  // Every route here acts for an owner (accounts/plugin.ts); the 401 is in every operation.
  app.addHook('onRequest', app.auth.authenticate)
  app.auth.meter(app)
  app.addHook('onResponse', app.auth.recordUse)
  const security = operationSecurity(app.config.AUTH_MODE)

  const ListQuery = Type.Object({
    ...schemas.filters,
    sort: Type.Optional(
      StringEnum(Object.keys(resource.sorts).flatMap((name) => [name, `-${name}`]), { default: resource.defaultSort, description: 'Sort key; prefix with - for descending. Ties are broken by id.' })
    ),
    // Optional with a default: the validator fills it in, and OpenAPI does not mark it required.
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: PAGE.max, default: PAGE.default, description: 'Page size' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, description: 'Opaque cursor from a Link rel="next" header' })),
    count: Type.Optional(Type.Boolean({ default: false, description: 'Add X-Total-Count (rows matching the filters)' }))
  })
  app.addSchema(schemas.item)
  const Item = Type.Ref(schemas.item)
  const IfMatch = Type.Object({ 'if-match': Type.Optional(Type.String({ description: 'Apply only to this version: an ETag from an earlier answer, or `*`' })) })

  /** What this resource's item URLs start with, for this request: `https://host/todos/`. */
  const itemsUrl = (request: FastifyRequest) => `${baseUrl(request, app.config.PUBLIC_BASE_URL)}${path}/`
  const describe = (id: number) => `${singular} ${id}`

  /** A write's outcome as HTTP; with If-Match, a missing item is a 412 (RFC 9110 §13.2.2). */
  const outcomeOf = async <T>(request: FastifyRequest, result: WriteResult<T>, id: number, conditional: boolean): Promise<T> => {
    if (result.status === 'not-found') {
      await app.auth.assertAuthenticated(request)
      throw conditional ? preconditionFailed(`${describe(id)} does not exist, so If-Match cannot match`) : notFound(`${describe(id)} does not exist`)
    }
    if (result.status === 'stale') throw preconditionFailed(`${describe(id)} has changed since the version in If-Match; fetch it again and retry with its current ETag`)
    return result.row
  }

  const trimFields = trimBodyFields(resource.trim ?? [])

  app.get(
    '',
    {
      schema: {
        tags,
        operationId: `list${Plural}`,
        summary: `List ${plural}`,
        description: 'A plain JSON array. When more rows match, `Link: <url>; rel="next"` points to the next page.',
        querystring: ListQuery,
        security,
        response: { 200: jsonResponse(Type.Array(Item), `A page of ${plural}`, ['Link', 'X-Total-Count']), ...problemResponses(401) }
      }
    },
    async (request, reply) => {
      const { sort, limit = PAGE.default, cursor, count, ...filters } = request.query
      const base = baseUrl(request, app.config.PUBLIC_BASE_URL)
      const page = await executor.list(request.owner, filters, { sort, limit, cursor, urlBase: `${base}${path}/` })
      if (page.items.length === 0) await app.auth.assertAuthenticated(request)
      if (count) reply.header('X-Total-Count', String(await executor.count(request.owner, filters)))
      if (page.next !== undefined) reply.header('Link', `<${withQueryParameter(base, request.url, 'cursor', page.next)}>; rel="next"`)
      return sendJsonText(reply, JSON.stringify(page.items))
    }
  )

  app.post(
    '',
    {
      preParsing: app.auth.proveBeforeLargeBody,
      preValidation: trimFields,
      bodyLimit: BODY_LIMIT,
      schema: {
        tags,
        operationId: `create${Singular}`,
        summary: `Create a ${singular}`,
        description:
          'Answers 201 with the new item, its `Location` and `ETag`. With an `Idempotency-Key`, a retry with the same key and ' +
          'body gets the first answer again (`Idempotent-Replayed: true`) instead of a second item; the same key with another ' +
          'body is 422, and while the first request still runs, 409.',
        headers: Type.Object({
          'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 257, description: 'Any unique value (a UUID), kept for IDEMPOTENCY_KEY_TTL_HOURS' }))
        }),
        body: schemas.create,
        security,
        response: { 201: jsonResponse(Item, `The new ${singular}`, ['Location', 'ETag', 'Idempotent-Replayed']), ...problemResponses(401, 409, 413, 415, 422, 504) }
      }
    },
    async (request, reply) => {
      const base = itemsUrl(request)
      const { owner, body } = request
      const key = idempotencyKey(request.headers['idempotency-key'])
      if (key === undefined) {
        const item = await executor.create(owner, body, base)
        if (item === undefined) throw unauthenticated(true) // only a token that is not valid has no owner
        reply.code(201).header('Location', `${base}${item.id}`).header('ETag', etagFor(item.version))
        return sendJsonText(reply, JSON.stringify(item.body))
      }
      const outcome = await idempotency.once(owner, key, fingerprint('POST', path, body), async (tx) => {
        const item = await executor.createIn(tx, owner, body, base)
        return item && { status: 201, headers: { location: `${base}${item.id}`, etag: etagFor(item.version) }, body: JSON.stringify(item.body) }
      })
      if (outcome === undefined) throw unauthenticated(true)
      app.metrics.idempotency.inc({ outcome: outcome.replayed ? 'replayed' : 'created' })
      reply.code(outcome.answer.status as 201).headers(outcome.answer.headers)
      if (outcome.replayed) reply.header('Idempotent-Replayed', 'true')
      return sendJsonText(reply, outcome.answer.body)
    }
  )

  app.get(
    '/:id',
    {
      schema: {
        tags,
        operationId: `get${Singular}`,
        summary: `Get a ${singular}`,
        description: 'Sends an `ETag`; with `If-None-Match` carrying it, answers 304 without a body.',
        params: IdParams,
        headers: Type.Object({ 'if-none-match': Type.Optional(Type.String({ description: 'ETags you have: 304 if one is current' })) }),
        security,
        response: {
          200: jsonResponse(Item, `The ${singular}`, ['ETag', 'Cache-Control']),
          304: emptyResponse('Not modified: your copy is current', ['ETag', 'Cache-Control']),
          ...problemResponses(401, 404, 414)
        }
      }
    },
    async (request, reply) => {
      const { id } = request.params
      const item = await executor.get(request.owner, id, itemsUrl(request))
      if (item === undefined) {
        await app.auth.assertAuthenticated(request)
        throw notFound(`${describe(id)} does not exist`)
      }
      const etag = etagFor(item.version)
      reply.header('ETag', etag).header('Cache-Control', 'no-cache')
      if (ifNoneMatchHits(request.headers['if-none-match'], etag)) return reply.code(304).send(undefined as never) // no body, so no Content-Length (RFC 9110 §8.6)
      return sendJsonText(reply, JSON.stringify(item.body))
    }
  )

  app.patch(
    '/:id',
    {
      preParsing: app.auth.proveBeforeLargeBody,
      preValidation: trimFields,
      bodyLimit: BODY_LIMIT,
      schema: {
        tags,
        operationId: `update${Singular}`,
        summary: `Update a ${singular}`,
        description:
          'Partial update (JSON Merge Patch: `null` clears an optional field). With `If-Match`, applies only if the ' +
          `${singular} is still at that version, else 412 and nothing changes.`,
        params: IdParams,
        headers: IfMatch,
        body: schemas.patch,
        consumes: ['application/json', 'application/merge-patch+json'],
        security,
        response: { 200: jsonResponse(Item, `The ${singular} as changed`, ['ETag']), ...problemResponses(401, 404, 409, 412, 413, 414, 415, 422, 504) }
      }
    },
    async (request, reply) => {
      const { id } = request.params
      const precondition = parseIfMatch(request.headers['if-match'])
      const item = await outcomeOf(request, await executor.update(request.owner, id, request.body, precondition, itemsUrl(request)), id, precondition !== undefined)
      reply.header('ETag', etagFor(item.version))
      return sendJsonText(reply, JSON.stringify(item.body))
    }
  )

  app.delete(
    '/:id',
    {
      schema: {
        tags,
        operationId: `delete${Singular}`,
        summary: `Delete a ${singular}`,
        description: 'Honours `If-Match` like PATCH.',
        params: IdParams,
        headers: IfMatch,
        security,
        response: { 204: emptyResponse('Deleted'), ...problemResponses(401, 404, 412, 414, 504) }
      }
    },
    async (request, reply) => {
      const { id } = request.params
      const precondition = parseIfMatch(request.headers['if-match'])
      await outcomeOf(request, await executor.remove(request.owner, id, precondition), id, precondition !== undefined)
      return reply.code(204).send(undefined as never)
    }
  )

  if (!resource.deleteAll) return
  app.delete(
    '',
    {
      schema: {
        tags,
        operationId: `deleteAll${Plural}`,
        summary: `Delete every ${singular}`,
        description: `Deletes every ${singular} of the caller's, and nobody else's.`,
        security,
        response: { 204: emptyResponse('Deleted'), ...problemResponses(401, 504) }
      }
    },
    async (request, reply) => {
      if ((await executor.removeAll(request.owner)) === 0) await app.auth.assertAuthenticated(request)
      return reply.code(204).send(undefined as never)
    }
  )
}

export default resourceRoutes
