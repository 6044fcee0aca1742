import type { FastifyBaseLogger } from 'fastify'
import type { Owner } from '../accounts/owner.js'
import { tokenUsableNow } from '../accounts/owner.js'
import type { Database } from '../db/client.js'
import { errorLine } from '../lib/logger.js'
import { HttpProblem } from '../lib/problem.js'
import type { AnyResource } from '../resources/engine/define.js'
import type { ChangeFeed, ChangesPage } from './changes.js'
import { createListener } from './listener.js'

/** One open GET /events stream, as the hub sees it: what it acts for, where it is, and its socket. */
export interface Stream {
  readonly owner: Owner
  readonly ownerId: number
  /** The cursor after the last change written: where the next fetch starts. */
  cursor: string
  readonly urlBase: (resource: AnyResource) => string
  /** Bytes written and not yet taken by the client (the response's and the socket's buffers). */
  buffered(): number
  write(text: string): void
  /** Writes `last` (if any) and ends the stream. */
  end(last?: string): void
}

interface State {
  stream: Stream
  busy: boolean
  dirty: boolean
  open: boolean
  /** Since when the client has more than the limit waiting to be taken (0: it has not). */
  behindSince: number
}

/** Changes fetched per round trip while catching a stream up. */
const PAGE = 100
/** How often the hub checks that every stream's token is still valid, and that no client has fallen behind. */
export const SWEEP_MS = 2000
/** The most streams one owner may hold open on one instance. */
export const STREAMS_PER_OWNER = 16
/** A client that leaves more than the limit untaken for this long cannot keep up. */
export const STALL_MS = 5000

export const changeEvent = (id: string, data: unknown) => `id: ${id}\nevent: change\ndata: ${JSON.stringify(data)}\n\n`
/** An event that tells the client to reconnect after `ms` (a field of its own: EventSource applies it to the next reconnect). */
export const retryHint = (ms: number) => `retry: ${ms}\n\n`

/**
 * Push for GET /events. One LISTEN connection per process (on the direct URL: LISTEN needs
 * a session, which a transaction pooler does not keep), opened with the first stream; the
 * change log's trigger NOTIFYs the owner of each change at commit (migrations/0011). A
 * notification for an owner makes each of their streams here fetch what changed after its
 * own cursor (GET /changes' feed), so a notification lost with a dropped connection loses
 * nothing: after a reconnect every stream fetches again. A stream never has more than one
 * fetch under way; a notification during one makes it fetch once more afterwards.
 */
export function createHub(options: {
  listenUrl: string
  db: Database
  feed: ChangeFeed
  log: FastifyBaseLogger
  bufferBytes: number
  retryMs: number
}) {
  const { feed, log, db } = options
  const byOwner = new Map<number, Set<State>>()
  let count = 0
  let sweeper: NodeJS.Timeout | undefined
  /** The most any stream had buffered when a fetch began (tests check memory stays bounded). */
  let peakBuffered = 0

  const everyState = () => [...byOwner.values()].flatMap((set) => [...set])

  const listener = createListener({
    url: options.listenUrl,
    log,
    onNotification: (ownerId) => {
      for (const state of byOwner.get(ownerId) ?? []) void pump(state)
    },
    // Notifications sent while the connection was down are lost: every stream looks for itself.
    onReconnect: () => everyState().forEach((state) => void pump(state)),
    wanted: () => count > 0
  })

  function remove(state: State) {
    if (!state.open) return
    state.open = false
    const set = byOwner.get(state.stream.ownerId)
    if (set?.delete(state)) count--
    if (set?.size === 0) byOwner.delete(state.stream.ownerId)
  }

  function resync(state: State) {
    remove(state)
    state.stream.end(`event: resync\ndata: ${JSON.stringify({ cursor: state.stream.cursor })}\n\n`)
  }

  /** Writes what changed after the stream's cursor, page by page, until nothing is left. */
  async function pump(state: State): Promise<void> {
    if (state.busy) {
      state.dirty = true
      return
    }
    state.busy = true
    try {
      do {
        state.dirty = false
        const buffered = state.stream.buffered()
        peakBuffered = Math.max(peakBuffered, buffered)
        // A client with more than the limit untaken is sent nothing more until it takes it
        // (the stream's 'drain' or the sweep fetches again); past STALL_MS, it is told to catch up by itself.
        if (buffered > options.bufferBytes) {
          state.behindSince ||= Date.now()
          state.dirty = true
          return
        }
        state.behindSince = 0
        const page: ChangesPage = await feed.page(state.stream.owner, state.stream.cursor, PAGE, state.stream.urlBase, { ids: true })
        if (!state.open) return
        if (page.ownerId === null) {
          remove(state)
          return state.stream.end()
        }
        // Event by event, up to the limit: the rest of the page is fetched again once the client took what it has.
        const ids = page.ids ?? []
        let written = 0
        for (; written < page.changes.length && state.stream.buffered() <= options.bufferBytes; written++) {
          state.stream.write(changeEvent(ids[written] as string, page.changes[written]))
          state.stream.cursor = ids[written] as string
        }
        if (written === page.changes.length) state.stream.cursor = page.cursor
        if (page.more || written < page.changes.length) state.dirty = true
      } while (state.dirty && state.open)
    } catch (error) {
      // A cursor that expired while connected (a client far behind for SYNC_RETENTION_DAYS).
      if (error instanceof HttpProblem && error.status === 410) return resync(state)
      // The database failed us: the stream stays, and tries again at the next sweep.
      log.warn({ reason: errorLine(error) }, 'could not fetch changes for an event stream')
      state.dirty = true
    } finally {
      state.busy = false
    }
  }

  /**
   * Ends the streams of tokens revoked or expired since, and those of clients that stopped
   * reading; checks that the listener still answers. While it does not, every stream
   * fetches at each sweep instead of waiting for a notification.
   */
  async function sweep() {
    const states = everyState()
    const now = Date.now()
    const deaf = !(await listener.answers())
    for (const state of states) {
      if (state.behindSince > 0 && now - state.behindSince > STALL_MS && state.stream.buffered() > options.bufferBytes) resync(state)
      else if ((state.dirty || deaf) && !state.busy) void pump(state)
    }
    if (deaf) listener.reconnectSoon()
    const hashes = [...new Set(states.filter((state) => state.open && state.stream.owner.tokenHash !== undefined).map((state) => state.stream.owner.tokenHash!.toString('hex')))]
    if (hashes.length === 0) return
    const { rows } = await db.query<{ hash: string }>(
      `SELECT encode(h, 'hex') AS hash FROM unnest($1::bytea[]) h WHERE NOT EXISTS (SELECT 1 FROM api_tokens k WHERE k.token_hash = h AND ${tokenUsableNow('k')})`,
      [hashes.map((hex) => Buffer.from(hex, 'hex'))]
    )
    const gone = new Set(rows.map((row) => row.hash))
    for (const state of states) {
      const hash = state.stream.owner.tokenHash?.toString('hex')
      if (hash !== undefined && gone.has(hash)) {
        remove(state)
        state.stream.end()
      }
    }
  }

  return {
    get streams() {
      return count
    },
    get peakBuffered() {
      return peakBuffered
    },
    /** How many streams the owner holds here. */
    streamsOf: (ownerId: number) => byOwner.get(ownerId)?.size ?? 0,
    /** Makes sure notifications are coming before a stream reads its first page, so none is missed in between. */
    listen: () => listener.listen(),

    /**
     * Starts pushing to a stream whose first page was written. `wake` is for when the
     * client took what was waiting ('drain'), `remove` for when it left.
     */
    add(stream: Stream): { wake: () => void; remove: () => void } {
      const state: State = { stream, busy: false, dirty: false, open: true, behindSince: 0 }
      let set = byOwner.get(stream.ownerId)
      if (set === undefined) byOwner.set(stream.ownerId, (set = new Set()))
      set.add(state)
      count++
      sweeper ??= setInterval(() => void sweep().catch((error: unknown) => log.warn({ reason: errorLine(error) }, 'could not check event streams')), SWEEP_MS).unref()
      // Whatever committed between its first page and now.
      void pump(state)
      return {
        wake: () => {
          if (state.dirty && state.open) void pump(state)
        },
        remove: () => remove(state)
      }
    },

    /** Ends every stream with a hint to reconnect (elsewhere: this instance is going away). */
    closeAll() {
      for (const state of everyState()) {
        remove(state)
        state.stream.end(retryHint(options.retryMs))
      }
    },

    async close() {
      this.closeAll()
      clearInterval(sweeper)
      await listener.close()
    }

  }
}

export type Hub = ReturnType<typeof createHub>
