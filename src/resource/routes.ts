import { Type, type TObject, type TProperties } from '@sinclair/typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { HttpProblem, notFound, problemResponses } from '../lib/problem.js'
import { IdParams, StringEnum } from '../lib/schema.js'
import { baseUrl, withQueryParameter } from '../lib/urls.js'
import { etagFor, ifNoneMatchHits, parseIfMatch } from './conditional.js'
import type { BaseRow, TableRepository, WriteResult } from './repository.js'

/** One resource: its names, schemas and repository. */
export interface ResourceDefinition<Row extends BaseRow, Filters> {
  /** Singular and plural names, for messages and OpenAPI operation ids. */
  singular: string
  plural: string
  /** The collection path, e.g. `/todos`. */
  path: string
  schemas: {
    item: TObject
    create: TObject
    patch: TObject
    /** Query-string filters; sorting and pagination parameters are added here. */
    filters: TProperties
  }
  sorts: readonly string[]
  defaultSort: string
  /** Text fields whose surrounding whitespace is dropped before validation, so limits apply to what is stored. */
  trim?: readonly string[]
  /** Adds `DELETE <path>`, which empties the collection (the Todo-Backend spec needs it). */
  deleteAll?: boolean
  repository(app: FastifyInstance): TableRepository<Row, Filters>
}

interface ListControls {
  sort?: string
  limit: number
  cursor?: string
  count?: boolean
}

const MAX_PAGE = 1000

/**
 * Registers the routes every resource has, the same way for each: a keyset-paginated
 * list with a `Link` next header, create with `Location` and `ETag`, conditional reads
 * (304) and writes (412), and deletes. A resource supplies schemas and a repository.
 */
export function resourceRoutes<Row extends BaseRow, Filters>(definition: ResourceDefinition<Row, Filters>) {
  const { singular, plural, path, schemas } = definition
  const Singular = singular[0]?.toUpperCase() + singular.slice(1)
  const Plural = plural[0]?.toUpperCase() + plural.slice(1)
  const tags = [plural]

  const query = Type.Object({
    ...schemas.filters,
    sort: Type.Optional(
      StringEnum(definition.sorts.flatMap((name) => [name, `-${name}`]), {
        default: definition.defaultSort,
        description: `Sort key; prefix with - for descending. Ties are broken by id.`
      })
    ),
    // Optional with a default: the validator fills it in, and OpenAPI does not mark it required.
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: 100, description: 'Page size' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, description: 'Opaque cursor from a Link rel="next" header' })),
    count: Type.Optional(Type.Boolean({ default: false, description: 'Add X-Total-Count (rows matching the filters)' }))
  })
  const item = Type.Ref(schemas.item)
  const NoContent = Type.Null({ description: 'No content' })

  return async function routes(app: FastifyInstance) {
    app.addSchema(schemas.item)
    const repository = definition.repository(app)
    const itemUrl = (request: FastifyRequest, id: number) => `${baseUrl(request, app.config)}${path}/${id}`
    // The item schema decides what a client sees: its serializer writes only the schema's
    // properties, so the row version stays internal.
    const show = (request: FastifyRequest, row: Row) => ({ ...row, url: itemUrl(request, row.id) })
    const describe = (id: number) => `${singular} ${id}`

    /** The outcome of a write as HTTP; with If-Match, a missing item is a 412 (RFC 9110 §13.2.2). */
    const settle = <T>(result: WriteResult<T>, id: number, conditional: boolean): T => {
      if (result.status === 'not-found') {
        if (!conditional) throw notFound(`${describe(id)} does not exist`)
        throw new HttpProblem(412, 'PRECONDITION_FAILED', `${describe(id)} does not exist, so If-Match cannot match`)
      }
      if (result.status === 'stale') {
        throw new HttpProblem(
          412,
          'PRECONDITION_FAILED',
          `${describe(id)} has changed since the version in If-Match; fetch it again and retry with its current ETag`
        )
      }
      return result.row
    }

    app.get(
      path,
      {
        schema: {
          tags,
          operationId: `list${Plural}`,
          summary: `List ${plural}`,
          description: 'A plain JSON array. When more rows match, `Link: <url>; rel="next"` points to the next page.',
          querystring: query,
          response: { 200: Type.Array(item, { description: `A page of ${plural}` }), ...problemResponses(400) }
        }
      },
      async (request: FastifyRequest, reply: FastifyReply) => {
        const controls = request.query as ListControls
        const filters = request.query as Filters
        const page = await repository.list(filters, controls)
        if (controls.count) reply.header('X-Total-Count', String(await repository.count(filters)))
        if (page.next !== undefined) {
          reply.header('Link', `<${withQueryParameter(baseUrl(request, app.config), request.url, 'cursor', page.next)}>; rel="next"`)
        }
        return page.rows.map((row) => show(request, row))
      }
    )

    const trimFields = async (request: FastifyRequest) => {
      const body = request.body as Record<string, unknown> | undefined
      if (body === null || typeof body !== 'object' || Array.isArray(body)) return
      for (const field of definition.trim ?? []) {
        const value = body[field]
        if (typeof value === 'string') body[field] = value.trim()
      }
    }

    app.post(
      path,
      {
        preValidation: trimFields,
        schema: {
          tags,
          operationId: `create${Singular}`,
          summary: `Create a ${singular}`,
          description: 'Answers 201 with the new item, its `Location` and `ETag`.',
          body: schemas.create,
          response: { 201: item, ...problemResponses(400, 409, 415) }
        }
      },
      async (request: FastifyRequest, reply: FastifyReply) => {
        const row = await repository.create(request.body as Record<string, unknown>)
        reply.code(201).header('Location', itemUrl(request, row.id)).header('ETag', etagFor(row.version))
        return show(request, row)
      }
    )

    app.get(
      `${path}/:id`,
      {
        schema: {
          tags,
          operationId: `get${Singular}`,
          summary: `Get a ${singular}`,
          description: 'Sends an `ETag`; with `If-None-Match` carrying it, answers 304 without a body.',
          params: IdParams,
          response: { 200: item, 304: Type.Null({ description: 'Not modified' }), ...problemResponses(400, 404) }
        }
      },
      async (request: FastifyRequest<{ Params: { id: number } }>, reply: FastifyReply) => {
        const { id } = request.params
        const row = await repository.get(id)
        if (row === undefined) throw notFound(`${describe(id)} does not exist`)
        const etag = etagFor(row.version)
        reply.header('ETag', etag).header('Cache-Control', 'no-cache')
        if (ifNoneMatchHits(request.headers['if-none-match'], etag)) return reply.code(304).send()
        return show(request, row)
      }
    )

    app.patch<{ Params: { id: number } }>(
      `${path}/:id`,
      {
        preValidation: trimFields,
        schema: {
          tags,
          operationId: `update${Singular}`,
          summary: `Update a ${singular}`,
          description:
            'Partial update (JSON Merge Patch: `null` clears an optional field). With `If-Match`, applies only if the ' +
            `${singular} is still at that version, else 412 and nothing changes.`,
          params: IdParams,
          body: schemas.patch,
          response: { 200: item, ...problemResponses(400, 404, 409, 412, 415) }
        }
      },
      async (request: FastifyRequest<{ Params: { id: number } }>, reply: FastifyReply) => {
        const { id } = request.params
        const precondition = parseIfMatch(request.headers['if-match'])
        const row = settle(await repository.update(id, request.body as Record<string, unknown>, precondition), id, precondition !== undefined)
        reply.header('ETag', etagFor(row.version))
        return show(request, row)
      }
    )

    app.delete(
      `${path}/:id`,
      {
        schema: {
          tags,
          operationId: `delete${Singular}`,
          summary: `Delete a ${singular}`,
          description: 'Honours `If-Match` like PATCH.',
          params: IdParams,
          response: { 204: NoContent, ...problemResponses(400, 404, 412) }
        }
      },
      async (request: FastifyRequest<{ Params: { id: number } }>, reply: FastifyReply) => {
        const { id } = request.params
        const precondition = parseIfMatch(request.headers['if-match'])
        settle(await repository.remove(id, precondition), id, precondition !== undefined)
        return reply.code(204).send()
      }
    )

    if (!definition.deleteAll) return
    app.delete(
      path,
      {
        schema: {
          tags,
          operationId: `deleteAll${Plural}`,
          summary: `Delete every ${singular}`,
          response: { 204: NoContent, ...problemResponses() }
        }
      },
      async (_request: FastifyRequest, reply: FastifyReply) => {
        await repository.removeAll()
        return reply.code(204).send()
      }
    )
  }
}
