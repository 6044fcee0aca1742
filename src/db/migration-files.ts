import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Migration } from 'node-pg-migrate'

/** `migrations/` at the project root, from `src/db` (tsx) and `dist/db` (compiled) alike. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url))

/** A migration run (or a migration command) that failed; the database was left as it was before. */
export class MigrationError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'MigrationError'
  }
}

/** A migration file as the runner and `migrate status` see it. */
export interface MigrationFile {
  /** The file name without `.sql`: what pgmigrations records. */
  name: string
  path: string
  sha256: string
  /** The SQL under `-- Up Migration` (what `migrate up --dry-run` prints). */
  up: string
  down: string | undefined
  /** No SQL under `-- Up Migration` yet (a file just made by `make migration`): never applied. */
  empty: boolean
  /** `false` when the file says `-- todos-api: no-transaction` (CREATE INDEX CONCURRENTLY...). */
  transaction: boolean
}

/** The same markers node-pg-migrate splits SQL files on. */
const UP = /^\s*--[\s-]*up\s+migration/im
const DOWN = /^\s*--[\s-]*down\s+migration/im
export const NO_TRANSACTION = /^\s*--\s*todos-api:\s*no-transaction\b/im

export function parseMigration(name: string, path: string, content: string): MigrationFile {
  const upAt = content.search(UP)
  const downAt = content.search(DOWN)
  const up = upAt >= 0 ? content.slice(upAt, downAt > upAt ? downAt : undefined) : content
  const down = downAt >= 0 ? content.slice(downAt, upAt > downAt ? upAt : undefined) : undefined
  return {
    name,
    path,
    sha256: createHash('sha256').update(content).digest('hex'),
    up,
    down,
    empty: withoutComments(up).trim() === '',
    transaction: !NO_TRANSACTION.test(content)
  }
}

const withoutComments = (sql: string) => sql.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '')

export async function migrationFiles(dir = MIGRATIONS_DIR): Promise<MigrationFile[]> {
  const names = (await readdir(dir)).filter((file) => /^\d+_.+\.sql$/.test(file)).sort()
  return Promise.all(names.map(async (file) => parseMigration(basename(file, '.sql'), join(dir, file), await readFile(join(dir, file), 'utf8'))))
}

/** Creates `migrations/<next number>_<name>.sql` with both parts; returns its path. */
export async function createMigration(name: string, dir = MIGRATIONS_DIR): Promise<string> {
  if (!/^[a-z][a-z0-9_]*$/.test(name)) {
    throw new MigrationError('a migration name is lower-case letters, digits and underscores, starting with a letter (e.g. add_todo_tags)')
  }
  return Migration.create(name, dir, { filenameFormat: 'index', language: 'sql' })
}
