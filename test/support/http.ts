import type { FastifyInstance, InjectOptions } from 'fastify'

type Json = Record<string, unknown>

/** Small wrappers over `app.inject` for JSON requests. */
export function jsonClient(app: FastifyInstance) {
  const send = (method: InjectOptions['method'], url: string, body?: unknown, headers: Record<string, string> = {}) =>
    app.inject({
      method,
      url,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) })
    })
  return {
    get: (url: string, headers?: Record<string, string>) => send('GET', url, undefined, headers),
    post: (url: string, body: unknown, headers?: Record<string, string>) => send('POST', url, body, headers),
    patch: (url: string, body: unknown, headers?: Record<string, string>) => send('PATCH', url, body, headers),
    delete: (url: string, headers?: Record<string, string>) => send('DELETE', url, undefined, headers),
    /** Creates one item and returns its JSON. */
    async create(url: string, body: Json): Promise<Json & { id: number; url: string }> {
      const response = await send('POST', url, body)
      if (response.statusCode !== 201) throw new Error(`create failed: ${response.statusCode} ${response.body}`)
      return response.json()
    }
  }
}
