import { ownerKind, ownerValue, type Owner, type OwnerKind } from '../../accounts/owner.js'
import type { Database } from '../../db/client.js'
import type { Series } from '../../lib/metrics.js'
import { AsyncResource } from 'node:async_hooks'
import type { BatchTracer } from '../../lib/tracing.js'
import { outcomeUnknown } from '../../lib/problem.js'
import { currentCredit, sharedCredit, withCredit, type TimingCredit } from '../../lib/server-timing.js'
import { BATCH_FORM, toParameter } from './rows.js'
import type { ResourceStatements } from './statements.js'

/** Requests one batched statement carries at most; more waiting go in further statements. */
export const MAX_BATCH = 100

/** Who watches the batches: how many callers each carries, and the spans of tracing when it is on. */
export interface BatchWatch {
  sizes: Series
  tracer?: BatchTracer | undefined
  /** The span's name: `todos read`. */
  name?: string
}
const UNWATCHED: BatchWatch = { sizes: { observe() {} } }

/** One caller's part of a batch: its input, and how its promise settles. */
interface Waiting<In, Out> {
  input: In
  /** Where its database time goes (SERVER_TIMING). */
  credit: TimingCredit | undefined
  /** Its span, when tracing is on. */
  trace?: unknown
  resolve(output: Out): void
  reject(error: unknown): void
}

/**
 * Gathers what callers ask for during one turn of the event loop (the requests whose
 * bytes one poll of the sockets read), by key, and hands each key's callers to `run`
 * when the turn ends (setImmediate), at most MAX_BATCH at a time. Nothing waits for
 * company: a caller alone in its turn is handed on alone, microseconds later. `run`
 * settles every caller it is given; `sizes` counts how many it was given each time.
 */
function batchPerTurn<In, Out>(watch: BatchWatch, run: (waiting: Array<Waiting<In, Out>>) => void): (key: string, input: In) => Promise<Out> {
  const { sizes, tracer } = watch
  let queues = new Map<string, Array<Waiting<In, Out>>>()
  // Bound here, so a batch runs in nobody's context (not that of the request that happened
  // to schedule the turn's flush): each caller's context travels with the caller instead.
  const flush = AsyncResource.bind(() => {
    const ready = queues
    queues = new Map()
    for (const queue of ready.values()) {
      for (let start = 0; start < queue.length; start += MAX_BATCH) {
        const waiting = queue.length <= MAX_BATCH ? queue : queue.slice(start, start + MAX_BATCH)
        sizes.observe(waiting.length)
        const credit = waiting.length === 1 ? waiting[0]?.credit : sharedCredit(waiting.map((caller) => caller.credit))
        if (tracer !== undefined) traced(tracer, watch.name ?? 'batch', waiting, credit, run)
        else {
          try {
            if (credit === undefined) run(waiting)
            else withCredit(credit, () => run(waiting))
          } catch (error) {
            rejectAll(waiting)(error) // never a caller left waiting, nor the other batches of the turn unsent
          }
        }
      }
    }
  })
  return (key, input) =>
    new Promise<Out>((resolve, reject) => {
      if (queues.size === 0) setImmediate(flush)
      let queue = queues.get(key)
      if (queue === undefined) queues.set(key, (queue = []))
      queue.push({ input, credit: currentCredit(), trace: tracer?.capture(), resolve, reject })
    })
}

/**
 * Runs a batch in its span (linked to each caller's; a caller alone runs in its own
 * context), ended once every caller is answered: each at most once, and all of them if
 * `run` throws.
 */
function traced<In, Out>(tracer: BatchTracer, name: string, waiting: Array<Waiting<In, Out>>, credit: TimingCredit | undefined, run: (waiting: Array<Waiting<In, Out>>) => void) {
  const span = tracer.start(name, waiting.map((caller) => caller.trace))
  let left = waiting.length
  const callers = waiting.map((caller) => {
    let settled = false
    const settle = () => {
      if (settled) return false
      settled = true
      if (--left === 0) span.end()
      return true
    }
    return { ...caller, resolve: (output: Out) => settle() && caller.resolve(output), reject: (error: unknown) => settle() && caller.reject(error) }
  })
  try {
    span.run(() => (credit === undefined ? run(callers) : withCredit(credit, () => run(callers))))
  } catch (error) {
    rejectAll(callers)(error)
  }
}

const rejectAll = (waiting: ReadonlyArray<{ reject(error: unknown): void }>) => (error: unknown) => {
  for (const caller of waiting) caller.reject(error)
}

/** A row as the codec reads it (rows.ts), or nothing. */
type Row = unknown[] | undefined

/** Reads one row by id for an owner: each statement alone. */
export const readOne = (db: Database, sql: ResourceStatements) => async (owner: Owner, id: number): Promise<Row> =>
  (await db.query<{ item: unknown[] }>(sql.getOne[ownerKind(owner)], [id, ownerValue(owner)])).rows[0]?.item

/**
 * Reads by id, batched: the lookups of one turn of the event loop go as one statement,
 * each still matched against its own owner (Prisma batches the `findUnique` calls of one
 * tick the same way), and a lookup alone in its turn runs the plain statement. A
 * statement that fails fails every lookup it carried with the same answer (503: a read is
 * always safe to retry), as each would have failed alone. Ids are integers by schema, so
 * no request's value can make the statement fail for the others.
 */
export function batchedReads(db: Database, sql: ResourceStatements, watch = UNWATCHED): (owner: Owner, id: number) => Promise<Row> {
  const one = readOne(db, sql)
  const enqueue = batchPerTurn<{ owner: Owner; id: number }, Row>(watch, (waiting) => {
    const first = waiting[0] as Waiting<{ owner: Owner; id: number }, Row>
    if (waiting.length === 1) return void one(first.input.owner, first.input.id).then(first.resolve, first.reject)
    const ids = waiting.map((lookup) => lookup.input.id)
    const owners = waiting.map((lookup) => ownerValue(lookup.input.owner))
    db.query<{ n: number; item: unknown[] }>(sql.getMany[ownerKind(first.input.owner)], [ids, owners])
      .then(({ rows }) => {
        const found = new Array<Row>(waiting.length)
        for (const row of rows) found[row.n - 1] = row.item
        waiting.forEach((lookup, i) => lookup.resolve(found[i]))
      })
      .catch(rejectAll(waiting))
  })
  return (owner, id) => enqueue(ownerKind(owner), { owner, id })
}

/** Creates one row: nothing for an owner that is not valid. */
export const createOne = (db: Database, sql: ResourceStatements) => async (owner: Owner, columns: string[], values: unknown[]): Promise<Row> => {
  const parameters = columns.map((column, i) => toParameter(sql.writable.get(column)?.kind ?? 'text', values[i]))
  return (await db.write<{ item: unknown[] }>(sql.insertOne(columns, ownerKind(owner)), [...parameters, ownerValue(owner)])).rows[0]?.item
}

/**
 * Creates batched as reads are: the creates of one turn with the same columns and the
 * same kind of owner go as one INSERT, one statement and one commit for them all
 * (statements.ts `insertMany`), each row with its own owner. A batch commits whole or not
 * at all:
 * - a connection lost or a statement timed out is the same answer for each create as for
 *   one alone (503, or 504 OUTCOME_UNKNOWN when it may have committed);
 * - a value PostgreSQL refuses (SQLSTATE class 22, 23 or 42) failed the whole statement
 *   with nothing written, so each create then runs alone and gets its own answer.
 * Each row's owner is checked against its place's, so even a broken order could never
 * hand one owner another's row; rows one batch creates share their created_at.
 */
export function batchedCreates(db: Database, sql: ResourceStatements, watch = UNWATCHED): (owner: Owner, columns: string[], values: unknown[]) => Promise<Row> {
  const one = createOne(db, sql)
  type Input = { owner: Owner; columns: string[]; values: unknown[] }
  const alone = (create: Waiting<Input, Row>) => void one(create.input.owner, create.input.columns, create.input.values).then(create.resolve, create.reject)

  const enqueue = batchPerTurn<Input, Row>(watch, (waiting) => {
    const { owner, columns } = (waiting[0] as Waiting<Input, Row>).input
    if (waiting.length === 1) return alone(waiting[0] as Waiting<Input, Row>)
    const forms = columns.map((column) => BATCH_FORM[sql.writable.get(column)?.kind ?? 'text'])
    const arrays = columns.map((_, c) => waiting.map((create) => (forms[c] as (typeof forms)[number]).value(create.input.values[c])))
    arrays.push(waiting.map((create) => ownerValue(create.input.owner)))
    db.write<{ places: number[] | null; owners: number[] | null; items: unknown[][] | null }>(sql.insertMany(columns, ownerKind(owner)), arrays)
      .then(
        ({ rows }) => {
          const { places, owners, items } = rows[0] ?? {}
          const [p = [], o = [], found = []] = [places ?? [], owners ?? [], items ?? []]
          // The rows are committed: if they cannot be told apart, nobody may be told "retry".
          if (p.length !== found.length || found.some((row, i) => row[row.length - 1] !== o[i])) {
            throw outcomeUnknown(new Error('a batched INSERT returned rows that do not match its input'))
          }
          const byPlace = new Array<Row>(waiting.length)
          p.forEach((place, i) => (byPlace[place - 1] = found[i]))
          waiting.forEach((create, i) => create.resolve(byPlace[i]))
        },
        (error: unknown) => {
          if (REFUSED.test((error as { code?: string }).code ?? '')) for (const create of waiting) alone(create)
          else throw error
        }
      )
      .catch(rejectAll(waiting))
  })
  return (owner, columns, values) => enqueue(`${ownerKind(owner) satisfies OwnerKind}:${columns.join(',')}`, { owner, columns, values })
}

/**
 * What PostgreSQL refused in the statement itself, so that nothing was written: a data
 * exception (22), a constraint (23), or a type or a name the statement got wrong (42).
 * Not a cancel (57014) or a lost connection: those are every create's answer alike.
 */
const REFUSED = /^(22|23|42)[0-9A-Z]{3}$/
