/**
 * `make lint-migrations` (and `make test`): squawk (https://squawkhq.com) over the Up part
 * of every file in migrations/, the SQL a deploy runs. Exit 0 when nothing is found.
 *
 * Settings, each for a reason:
 * - Down parts are not linted: they run to roll back, where dropping is the point.
 * - `--assume-in-transaction`: the runner applies pending files in one transaction; a
 *   file marked `-- todos-api: no-transaction` is linted as running outside one.
 * - require-lock-timeout, require-statement-timeout: off, because the runner sets both
 *   for every migration (MIGRATION_LOCK_TIMEOUT_MS, MIGRATION_STATEMENT_TIMEOUT_MS).
 * - prefer-bigint-over-int: off. Keys are `integer` throughout (users.id, and every
 *   owner_id that references it must match); a table outgrowing 2^31 rows is a migration
 *   of its own, not a lint.
 * - EXEMPT below: files that ran before linting existed. Applied files are checksummed and
 *   must not change, so an inline `-- squawk-ignore` is not possible for them.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MIGRATIONS_DIR, migrationFiles } from '../db/migration-files.js'

const EXEMPT: Record<string, string> = {
  // Rebuilt the sort indexes of todos with plain CREATE/DROP INDEX, holding todos' lock
  // for the rebuild: acceptable at that release's sizes. Today: CREATE INDEX CONCURRENTLY
  // in a no-transaction file (README, Migrations).
  '0003_keyset_sort_indexes': 'ran before migrations were linted',
  // Added owner_id to todos and cats with a default, then dropped and recreated their
  // indexes to lead with it, and added the foreign keys (NOT VALID, then VALIDATE in the
  // same transaction, so the lock was held throughout): one step of an upgrade that
  // needed a short maintenance window at that release's sizes.
  '0004_users_and_tokens': 'ran before migrations were linted'
}

const SQUAWK = fileURLToPath(new URL('../../node_modules/.bin/squawk', import.meta.url))
const dir = process.argv[2] ?? MIGRATIONS_DIR

let failed = 0
for (const file of await migrationFiles(dir)) {
  if (EXEMPT[file.name]) continue
  const args = ['--reporter', 'gcc', '--exclude', 'require-lock-timeout,require-statement-timeout,prefer-bigint-over-int', '--stdin-filepath', join('migrations', `${file.name}.sql`)]
  args.push(file.transaction ? '--assume-in-transaction' : '--no-assume-in-transaction')
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(SQUAWK, args, { stdio: ['pipe', 'inherit', 'inherit'] })
    child.on('error', reject)
    child.on('exit', (exitCode) => resolve(exitCode ?? 1))
    child.stdin.end(file.up)
  })
  if (code !== 0) failed++
}
const exempt = Object.keys(EXEMPT).length
process.stderr.write(failed ? `\nlint-migrations: ${failed} file(s) with findings (squawk, above)\n` : `lint-migrations: no findings (${exempt} files exempt, see src/dev/lint-migrations.ts)\n`)
process.exitCode = failed ? 1 : 0
