import http from 'node:http'

/** One Server-Sent Event as a client parses it; `comment` for a line that starts with a colon. */
export interface SseEvent {
  event?: string
  id?: string
  data?: string
  retry?: number
  comment?: string
}

/**
 * A GET /events stream over real HTTP, parsed as the EventSource algorithm does (fields
 * per line, an event per blank line). `until` waits for the events that match; `pause`
 * stops reading the socket, as a client that cannot keep up.
 */
export interface EventStream {
  status: number
  headers: http.IncomingHttpHeaders
  events: SseEvent[]
  /** The raw bytes received so far. */
  bytes: number
  ended: Promise<void>
  isEnded(): boolean
  until(predicate: (events: SseEvent[]) => boolean, timeoutMs?: number): Promise<SseEvent[]>
  changes(): Array<{ id: string; data: { type: string; id: number; deleted: boolean; data: Record<string, unknown> | null } }>
  pause(): void
  resume(): void
  close(): void
  /** The body, for a stream that was refused (problem+json). */
  body(): string
}

export function openEvents(url: string, headers: Record<string, string> = {}, agent?: http.Agent): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: 'text/event-stream', ...headers }, ...(agent ? { agent } : {}) }, (response) => {
      const events: SseEvent[] = []
      let text = ''
      let bytes = 0
      let ended = false
      let current: SseEvent = {}
      let raw = ''
      const waiters = new Set<() => void>()
      const wake = () => waiters.forEach((wake) => wake())
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        bytes += Buffer.byteLength(chunk)
        if (response.statusCode !== 200) {
          raw += chunk
          return
        }
        text += chunk
        let newline: number
        while ((newline = text.indexOf('\n')) >= 0) {
          const line = text.slice(0, newline)
          text = text.slice(newline + 1)
          if (line === '') {
            if (Object.keys(current).length > 0) events.push(current)
            current = {}
          } else if (line.startsWith(':')) {
            events.push({ comment: line.slice(1).trim() })
          } else {
            const colon = line.indexOf(':')
            const field = colon < 0 ? line : line.slice(0, colon)
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
            if (field === 'data') current.data = current.data === undefined ? value : `${current.data}\n${value}`
            else if (field === 'retry') current.retry = Number(value)
            else if (field === 'event' || field === 'id') current[field] = value
          }
        }
        wake()
      })
      const endedPromise = new Promise<void>((done) => {
        const finish = () => {
          ended = true
          wake()
          done()
        }
        response.once('end', finish)
        response.once('close', finish)
        response.once('error', finish)
      })
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        events,
        get bytes() {
          return bytes
        },
        ended: endedPromise,
        isEnded: () => ended,
        until(predicate, timeoutMs = 10_000) {
          return new Promise((done, fail) => {
            const check = () => {
              if (predicate(events)) {
                cleanup()
                done(events)
              } else if (ended) {
                cleanup()
                fail(new Error(`the stream ended first; events: ${JSON.stringify(events).slice(0, 2000)}`))
              }
            }
            const timer = setTimeout(() => {
              cleanup()
              fail(new Error(`no such events within ${timeoutMs} ms; events: ${JSON.stringify(events).slice(0, 2000)}`))
            }, timeoutMs)
            const cleanup = () => {
              clearTimeout(timer)
              waiters.delete(check)
            }
            waiters.add(check)
            check()
          })
        },
        changes: () => events.filter((event) => event.event === 'change').map((event) => ({ id: event.id as string, data: JSON.parse(event.data as string) })),
        pause: () => response.pause(),
        resume: () => response.resume(),
        close: () => request.destroy(),
        body: () => raw
      })
    })
    request.on('error', reject)
  })
}
