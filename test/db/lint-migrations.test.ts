import { copyFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { runScript, tempDir } from '../helper.js'

t.test('make lint-migrations: the shipped files pass; a new migration that would lock a busy table does not', async (t) => {
  const shipped = await runScript(t, 'dev/lint-migrations.ts', [], {})
  t.equal(shipped.code, 0, shipped.stderr)
  t.match(shipped.stderr, /no findings \(2 files exempt/)

  const dir = await tempDir(t)
  for (const file of await readdir(MIGRATIONS_DIR)) await copyFile(join(MIGRATIONS_DIR, file), join(dir, file))
  await writeFile(join(dir, '9006_index_titles.sql'), '-- Up Migration\nCREATE INDEX todos_lower_title_idx ON todos (lower(title));\n-- Down Migration\nDROP INDEX todos_lower_title_idx;\n')
  const bad = await runScript(t, 'dev/lint-migrations.ts', [dir], {})
  t.equal(bad.code, 1)
  t.match(bad.stdout + bad.stderr, /9006_index_titles\.sql:\d+:\d+: warning: require-concurrent-index-creation/)

  // The same index built concurrently, outside the batch transaction, as the README shows.
  await writeFile(
    join(dir, '9006_index_titles.sql'),
    '-- todos-api: no-transaction\n-- Up Migration\nCREATE INDEX CONCURRENTLY IF NOT EXISTS todos_lower_title_idx ON todos (lower(title));\n-- Down Migration\nDROP INDEX CONCURRENTLY IF EXISTS todos_lower_title_idx;\n'
  )
  const good = await runScript(t, 'dev/lint-migrations.ts', [dir], {})
  t.equal(good.code, 0, good.stdout + good.stderr)
})
