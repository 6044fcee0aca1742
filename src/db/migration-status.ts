import type pg from 'pg'
import { MigrationError, type MigrationFile } from './migration-files.js'

export const MIGRATIONS_TABLE = 'pgmigrations'
export const CHECKSUMS_TABLE = 'pgmigrations_checksums'

/**
 * - `applied`: ran, and its file is what ran (or ran before checksums were kept);
 * - `pending`: a file the database has not run (`empty` while it has no SQL yet);
 * - `changed`: ran, but its file has changed since (checksum);
 * - `missing`: recorded as run, but no file has its name (`ahead` when it sorts after
 *   every file: a newer release migrated this database, as during a rolling deploy).
 */
export type MigrationState = 'applied' | 'pending' | 'changed' | 'missing'

export interface MigrationStatus {
  name: string
  state: MigrationState
  /** When it ran (applied, changed, missing). */
  runOn?: Date
  empty?: boolean
  ahead?: boolean
}

/** Exit codes of `migrate status`, for deploy scripts: 0 all applied and unchanged. */
export const STATUS_EXIT = { current: 0, pending: 3, drift: 4 } as const

/** What the database recorded: names with when they ran, and checksums. Nothing at all before the first migration. */
export async function recorded(client: pg.ClientBase | pg.Pool): Promise<Map<string, { runOn: Date; sha256: string | null }>> {
  try {
    const { rows } = await client.query<{ name: string; run_on: Date; sha256: string | null }>(
      `SELECT m.name, m.run_on, c.sha256 FROM ${MIGRATIONS_TABLE} m LEFT JOIN ${CHECKSUMS_TABLE} c USING (name) ORDER BY m.name`
    )
    return new Map(rows.map((row) => [row.name, { runOn: row.run_on, sha256: row.sha256 }]))
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code !== '42P01') throw error
    // No checksums table yet (a database migrated before checksums), or nothing at all.
    try {
      const { rows } = await client.query<{ name: string; run_on: Date }>(`SELECT name, run_on FROM ${MIGRATIONS_TABLE} ORDER BY name`)
      return new Map(rows.map((row) => [row.name, { runOn: row.run_on, sha256: null }]))
    } catch (inner) {
      if ((inner as { code?: string }).code === '42P01') return new Map()
      throw inner
    }
  }
}

/** Every migration, from the files and the database's history together, in name order. */
export function compareMigrations(files: MigrationFile[], history: Map<string, { runOn: Date; sha256: string | null }>): MigrationStatus[] {
  const last = files.at(-1)?.name ?? ''
  const entries: MigrationStatus[] = files.map((file) => {
    const ran = history.get(file.name)
    if (!ran) return { name: file.name, state: 'pending', ...(file.empty ? { empty: true } : {}) }
    return { name: file.name, state: ran.sha256 !== null && ran.sha256 !== file.sha256 ? 'changed' : 'applied', runOn: ran.runOn }
  })
  const known = new Set(files.map((file) => file.name))
  for (const [name, ran] of history) {
    if (!known.has(name)) entries.push({ name, state: 'missing', runOn: ran.runOn, ...(name > last ? { ahead: true } : {}) })
  }
  return entries.sort((a, b) => a.name.localeCompare(b.name))
}

export async function migrationStatus(client: pg.ClientBase | pg.Pool, files: MigrationFile[]): Promise<MigrationStatus[]> {
  return compareMigrations(files, await recorded(client))
}

export const exitCodeOf = (entries: MigrationStatus[]): number =>
  entries.some((entry) => entry.state === 'changed' || entry.state === 'missing')
    ? STATUS_EXIT.drift
    : entries.some((entry) => entry.state === 'pending')
      ? STATUS_EXIT.pending
      : STATUS_EXIT.current

/**
 * What is wrong between the files and the database, and what to do, or undefined when
 * they agree. `tolerateAhead`: migrations recorded after every file (a newer release ran
 * them) are no reason to stop this one from starting.
 */
export function driftMessage(entries: MigrationStatus[], { tolerateAhead = false } = {}): string | undefined {
  const changed = entries.filter((entry) => entry.state === 'changed').map((entry) => entry.name)
  const missing = entries.filter((entry) => entry.state === 'missing' && !(tolerateAhead && entry.ahead)).map((entry) => entry.name)
  const problems: string[] = []
  if (changed.length > 0) {
    problems.push(
      `applied migration(s) ${changed.join(', ')} changed since they ran (checksum mismatch): restore the file as it was ` +
        `(git checkout -- migrations/${changed[0]}.sql) and put the change in a new migration; or, if the database already ` +
        `matches the file as it is now, record it so: make migrate-accept name=${changed[0]}`
    )
  }
  if (missing.length > 0) {
    problems.push(
      `migration(s) ${missing.join(', ')} are recorded as applied but have no file in migrations/: run the release that has ` +
        `them (git log -- migrations/${missing[0]}.sql); or, if what they did has been undone by hand, remove them from the ` +
        `history: make migrate-forget name=${missing[0]}`
    )
  }
  return problems.length > 0 ? problems.join('; ') : undefined
}

/** `name` as given on a command line (`0003` or `0003_keyset_sort_indexes`), among `names`. */
export function resolveName(given: string, names: string[]): string {
  const matches = names.filter((name) => name === given || name.startsWith(`${given}_`))
  if (matches.length !== 1) throw new MigrationError(matches.length === 0 ? `no migration named ${given}` : `${given} names several migrations: ${matches.join(', ')}`)
  return matches[0] as string
}
