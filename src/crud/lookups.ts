import { ownerKind, ownerValue, validTokenUserSql, type Owner, type OwnerKind } from '../auth/owner.js'
import type { Database } from '../db/client.js'
import { compile } from './compiled.js'
import { perTurn, rejectAll, type Waiting } from './batch.js'
import type { AnyResource } from './definition.js'

type Lookup = Waiting<{ id: number; owner: Buffer | number }, unknown[] | undefined>

/**
 * Lookups by id, batched: those that arrive in the same turn of the event loop (the
 * requests whose bytes one poll of the sockets read) go to PostgreSQL as one statement,
 * each still with its own owner, the way Prisma batches `findUnique` calls made in the
 * same tick. A lookup alone in its turn runs the plain statement, so a quiet service
 * answers exactly as before and nothing waits for company: the batch is sent when the
 * turn ends (setImmediate), at most microseconds after the last lookup joined it.
 *
 * Why: on a lookup by id the service spends more than half its CPU in system calls, one
 * write and one read to PostgreSQL and to the client each. Under load (32 connections) a
 * turn holds several lookups, and one statement for them all saves a write and a read to
 * PostgreSQL, and PostgreSQL an executor start, per lookup it carries.
 *
 * Every lookup keeps the guarantees of its own statement: each row is matched against
 * its own owner (`owner_id = r.owner`, or the user of a token valid now), so a batch
 * never lets one request see another's rows, and a token revoked before the statement
 * finds nothing. A statement that fails fails every lookup it carried with the same
 * answer (503: a read is always safe to retry), as each would have failed alone.
 * Ids are `integer` by schema (IdParams), so no value of one request can make the
 * statement fail for the others.
 */
export function createLookups(db: Database, resource: AnyResource): (owner: Owner, id: number) => Promise<unknown[] | undefined> {
  const { table, itemArray } = compile(resource)
  const single: Record<OwnerKind, string> = {
    user: `SELECT ${itemArray} AS item FROM ${table} t WHERE id = $1 AND owner_id = $2::int`,
    token: `SELECT ${itemArray} AS item FROM ${table} t WHERE id = $1 AND owner_id = ${validTokenUserSql('$2')}`
  }
  // ORDINALITY numbers the lookups, so each row goes back to the request that asked for it.
  const batched = (ownerType: string, owner: string) =>
    `SELECT r.n::int AS n, ${itemArray} AS item FROM unnest($1::int[], $2::${ownerType}[]) WITH ORDINALITY AS r(id, owner, n) ` +
    `JOIN ${table} t ON t.id = r.id WHERE t.owner_id = ${owner}`
  const batch: Record<OwnerKind, string> = { user: batched('int', 'r.owner'), token: batched('bytea', validTokenUserSql('r.owner')) }

  const enqueue = perTurn<Lookup['input'], unknown[] | undefined>((kind, waiting) => {
    const first = waiting[0] as Lookup
    if (waiting.length === 1) {
      db.query<{ item: unknown[] }>(single[kind as OwnerKind], [first.input.id, first.input.owner])
        .then(({ rows }) => first.resolve(rows[0]?.item))
        .catch(first.reject)
      return
    }
    const ids = new Array<number>(waiting.length)
    const owners = new Array<Buffer | number>(waiting.length)
    for (let i = 0; i < waiting.length; i++) {
      ids[i] = (waiting[i] as Lookup).input.id
      owners[i] = (waiting[i] as Lookup).input.owner
    }
    db.query<{ n: number; item: unknown[] }>(batch[kind as OwnerKind], [ids, owners])
      .then(({ rows }) => {
        const found = new Array<unknown[] | undefined>(waiting.length)
        for (const row of rows) found[row.n - 1] = row.item
        for (let i = 0; i < waiting.length; i++) (waiting[i] as Lookup).resolve(found[i])
      })
      .catch(rejectAll(waiting))
  })

  return (owner, id) => enqueue(ownerKind(owner), { id, owner: ownerValue(owner) })
}
