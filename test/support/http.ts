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

/** The URL of the next page from a `Link` header, as a path for `inject`. */
export function nextLink(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header.join(', ') : header
  const match = value === undefined ? null : /<([^>]+)>;\s*rel="next"/.exec(value)
  if (!match?.[1]) return undefined
  const url = new URL(match[1])
  return `${url.pathname}${url.search}`
}

/** Follows `Link: rel="next"` from `first` to the last page; `between` runs after each page. */
export async function walk<T>(app: FastifyInstance, first: string, between: () => Promise<void> = async () => {}) {
  const rows: T[] = []
  let pages = 0
  for (let url: string | undefined = first; url !== undefined; pages++) {
    const response = await app.inject(url)
    if (response.statusCode !== 200) throw new Error(`${url}: ${response.statusCode} ${response.body}`)
    rows.push(...(response.json() as T[]))
    url = nextLink(response.headers.link)
    await between()
  }
  return { rows, pages }
}
