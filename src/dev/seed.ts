import { LOCKS, inLockedTransaction, withClient } from '../db/client.js'
import { pendingMigrations } from '../db/migrate.js'
import { ident } from '../db/sql.js'
import { writableColumns, type AnyResource } from '../resources/engine/define.js'
import { BATCH_FORM } from '../resources/engine/rows.js'
import { loadResources } from '../resources/index.js'

/**
 * Demo data: each resource's `demo` rows (resources/<name>/demo.ts), the built-in local
 * user's, the same on every run. A row is only added when the local user has nothing
 * with its key (a todo's title, a cat's name), so seeding twice adds nothing and never
 * touches rows people made.
 */
export type SeedResult = Record<string, { added: number; total: number }>

/** The demo data is the built-in local user's: what `make dev` (AUTH_MODE=local) shows without a token. */
const LOCAL_USER = '(SELECT id FROM users WHERE builtin)'

export async function seedDatabase(connectionString: string, resources?: readonly AnyResource[]): Promise<SeedResult> {
  const seeded = (resources ?? (await loadResources())).filter((resource) => resource.demo !== undefined)
  return withClient(connectionString, (client) =>
    inLockedTransaction(client, LOCKS.seed, async () => {
      const result: SeedResult = {}
      for (const resource of seeded) {
        const { key, rows } = resource.demo as NonNullable<AnyResource['demo']>
        const demo = rows() as Array<Record<string, unknown>>
        const columns = writableColumns(resource).filter((column) => demo.some((row) => row[column.name] !== undefined))
        const names = columns.map((_, i) => `c${i + 1}`)
        const table = ident(resource.table)
        const keyName = names[columns.findIndex((column) => column.name === key)] as string
        const added = await client.query(
          `INSERT INTO ${table} (${[...columns.map((column) => ident(column.name)), 'owner_id'].join(', ')})
           SELECT ${columns.map((column, i) => BATCH_FORM[column.kind].element(`s.${names[i]}`)).join(', ')}, ${LOCAL_USER}
           FROM unnest(${columns.map((column, i) => `$${i + 1}::${BATCH_FORM[column.kind].type}`).join(', ')}) WITH ORDINALITY AS s(${[...names, 'n'].join(', ')})
           WHERE NOT EXISTS (SELECT 1 FROM ${table} x WHERE x.${ident(key)} = s.${keyName} AND x.owner_id = ${LOCAL_USER}) ORDER BY s.n`,
          columns.map((column) => demo.map((row) => BATCH_FORM[column.kind].value(row[column.name] ?? null)))
        )
        const { rows: total } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE owner_id = ${LOCAL_USER}`)
        result[resource.plural] = { added: added.rowCount ?? 0, total: total[0]?.n ?? 0 }
      }
      return result
    })
  )
}

/**
 * SEED_ON_START: `true` seeds (adding what is missing), `if-empty` only an empty
 * database; neither while migrations are pending (the tables may not be there).
 */
export async function seedOnStart(
  connectionString: string,
  mode: 'true' | 'if-empty',
  logger: { info(fields: object, message: string): void; warn(fields: object, message: string): void }
): Promise<void> {
  const resources = await loadResources()
  const pending = await withClient(connectionString, (client) => pendingMigrations(client))
  if (pending.length > 0) {
    logger.warn({ pending }, 'SEED_ON_START: not seeding, migrations are pending')
  } else if (mode === 'true' || (await isEmpty(connectionString, resources))) {
    const seeded = await seedDatabase(connectionString, resources)
    const added = Object.entries(seeded).map(([plural, { added: count }]) => `${count} ${plural}`)
    logger.info(seeded, `demo data: added ${inWords(added)}`)
  }
}

/** True when no resource has a row (SEED_ON_START=if-empty). */
export async function isEmpty(connectionString: string, resources: readonly AnyResource[]): Promise<boolean> {
  if (resources.length === 0) return true
  return withClient(connectionString, async (client) => {
    const { rows } = await client.query<{ empty: boolean }>(`SELECT ${resources.map((resource) => `NOT EXISTS (SELECT 1 FROM ${ident(resource.table)})`).join(' AND ')} AS empty`)
    return rows[0]?.empty ?? false
  })
}

/** `a`, `a and b`, `a, b and c`: the seeders' report of what they added. */
export const inWords = (parts: string[]) => (parts.length < 2 ? parts.join('') : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`)
