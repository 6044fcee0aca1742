import { operationSecurity } from '../plugins/auth.js'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { emptyResponse, jsonResponse, notFound, preconditionFailed, problemResponses, unauthenticated } from '../lib/problem.js'
import { IdParams, StringEnum, capitalise } from '../lib/schema.js'
import { baseUrl, withQueryParameter } from '../lib/urls.js'
import { trimBodyFields } from '../lib/validation.js'
import { etagFor, ifNoneMatchHits, parseIfMatch } from './conditional.js'
import { IDEMPOTENCY_HEADER, fingerprint, parseKey } from './idempotency.js'
import type { AnyResource } from './definition.js'
import { createRepository, type Item, type WriteResult } from './repository.js'

const MAX_PAGE = 1000
/** What a create or an update may send: past 16 KiB, only with a token proven valid first (plugins/auth.ts). */
const BODY_LIMIT = 1024 * 1024


/**
 * Sends JSON text in the shape the route's response schema describes, which stays the
 * documentation of the answer: items and pages come from the repository with the item
 * schema's properties in its order, so JSON.stringify (native, and cheaper than the
 * schema serializer on a 100-item page) writes exactly the serializer's bytes
 * (test/list-json.test.ts); an answer recorded with an Idempotency-Key is JSON text
 * already. Fastify sends a string with a JSON content type as it is; the type provider
 * knows only the parsed shape, hence `never`.
 */
const sendItem = (reply: FastifyReply, body: Item['body']) => sendJsonText(reply, typeof body === 'string' ? body : JSON.stringify(body))
const sendJsonText = (reply: FastifyReply, json: string) => reply.type('application/json; charset=utf-8').send(json as never)

/**
 * The routes every resource has, registered once per resource with its definition and
 * its path as the prefix: a keyset-paginated list with a `Link` next header, create with
 * `Location` and `ETag`, conditional reads (304) and writes (412), and deletes.
 */
const crudPlugin: FastifyPluginAsyncTypebox<{ resource: AnyResource }> = async (app, { resource }) => {
  const { singular, plural, path, schemas } = resource
  const Singular = capitalise(singular)
  const Plural = capitalise(plural)
  const tags = [plural]
  const repository = createRepository(app.db, resource)
  // Every route here acts for an owner (plugins/auth.ts); the 401 is in every operation.
  app.addHook('onRequest', app.auth.authenticate)
  app.addHook('preParsing', app.auth.proveBeforeLargeBody)
  app.addHook('onResponse', app.auth.recordUse)
  const security = operationSecurity(app.config.AUTH_MODE)

  const ListQuery = Type.Object({
    ...schemas.filters,
    sort: Type.Optional(
      StringEnum(Object.keys(resource.sorts).flatMap((name) => [name, `-${name}`]), {
        default: resource.defaultSort,
        description: `Sort key; prefix with - for descending. Ties are broken by id.`
      })
    ),
    // Optional with a default: the validator fills it in, and OpenAPI does not mark it required.
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: 100, description: 'Page size' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, description: 'Opaque cursor from a Link rel="next" header' })),
    count: Type.Optional(Type.Boolean({ default: false, description: 'Add X-Total-Count (rows matching the filters)' }))
  })
  app.addSchema(schemas.item)
  const Item = Type.Ref(schemas.item)
  const IfMatch = Type.Object({
    'if-match': Type.Optional(Type.String({ description: 'Apply only to this version: an ETag from an earlier answer, or `*`' }))
  })

  /** What this resource's item URLs start with, for this request: `https://host/todos/`. */
  const itemsUrl = (request: FastifyRequest) => `${baseUrl(request, app.config.PUBLIC_BASE_URL)}${path}/`
  const describe = (id: number) => `${singular} ${id}`

  /** The outcome of a write as HTTP; with If-Match, a missing item is a 412 (RFC 9110 §13.2.2). */
  const settle = async <T>(request: FastifyRequest, result: WriteResult<T>, id: number, conditional: boolean): Promise<T> => {
    if (result.status === 'not-found') {
      await app.auth.assertAuthenticated(request)
      if (!conditional) throw notFound(`${describe(id)} does not exist`)
      throw preconditionFailed(`${describe(id)} does not exist, so If-Match cannot match`)
    }
    if (result.status === 'stale') {
      throw preconditionFailed(`${describe(id)} has changed since the version in If-Match; fetch it again and retry with its current ETag`)
    }
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
      const { sort, limit = 100, cursor, count, ...filters } = request.query
      const base = baseUrl(request, app.config.PUBLIC_BASE_URL)
      const page = await repository.list(request.owner, filters, { sort, limit, cursor, urlBase: `${base}${path}/` })
      if (page.items.length === 0) await app.auth.assertAuthenticated(request)
      if (count) reply.header('X-Total-Count', String(await repository.count(request.owner, filters)))
      if (page.next !== undefined) reply.header('Link', `<${withQueryParameter(base, request.url, 'cursor', page.next)}>; rel="next"`)
      return sendJsonText(reply, JSON.stringify(page.items))
    }
  )

  app.post(
    '',
    {
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
      const key = parseKey(request.headers[IDEMPOTENCY_HEADER])
      const outcome =
        key === undefined
          ? { item: await repository.create(owner, body, base) }
          : await app.idempotency.once(owner, key, fingerprint('POST', path, body), (claim) => repository.create(owner, body, base, claim), () =>
              app.auth.assertAuthenticated(request)
            )
      if ('replay' in outcome) {
        reply.code(outcome.replay.status as 201).headers(outcome.replay.headers).header('Idempotent-Replayed', 'true')
        return sendJsonText(reply, outcome.replay.body)
      }
      const { item } = outcome
      if (item === undefined) throw unauthenticated(true) // only a token that is not valid has no owner
      reply.code(201).header('Location', `${base}${item.id}`).header('ETag', etagFor(item.version))
      return sendItem(reply, item.body)
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
      const item = await repository.get(request.owner, id, itemsUrl(request))
      if (item === undefined) {
        await app.auth.assertAuthenticated(request)
        throw notFound(`${describe(id)} does not exist`)
      }
      const etag = etagFor(item.version)
      reply.header('ETag', etag).header('Cache-Control', 'no-cache')
      if (ifNoneMatchHits(request.headers['if-none-match'], etag)) return reply.code(304).send(undefined as never) // no body, so no Content-Length (RFC 9110 §8.6)
      return sendItem(reply, item.body)
    }
  )

  app.patch(
    '/:id',
    {
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
        response: { 200: jsonResponse(Item, `The ${singular} as changed`, ['ETag']), ...problemResponses(401, 404, 409, 412, 413, 414, 415, 504) }
      }
    },
    async (request, reply) => {
      const { id } = request.params
      const precondition = parseIfMatch(request.headers['if-match'])
      const result = await repository.update(request.owner, id, request.body, precondition, itemsUrl(request))
      const item = await settle(request, result, id, precondition !== undefined)
      reply.header('ETag', etagFor(item.version))
      return sendItem(reply, item.body)
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
      await settle(request, await repository.remove(request.owner, id, precondition), id, precondition !== undefined)
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
      if ((await repository.removeAll(request.owner)) === 0) await app.auth.assertAuthenticated(request)
      return reply.code(204).send(undefined as never)
    }
  )
}

export default crudPlugin
