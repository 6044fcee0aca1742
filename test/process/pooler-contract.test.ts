/**
 * The HTTP contract test files run again with DATABASE_URL on a real PgBouncer in
 * transaction mode (Debian's 1.18, running docker/pgbouncer/pgbouncer.ini): whatever the
 * service does through its own pool, it does through a transaction pooler too.
 */
import { execFile, spawn } from 'node:child_process'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { ROOT } from '../helper.js'
import { PROGRAMS } from '../support/packages.js'

const CONTRACT_FILES = [
  ['app', 'resources/todos', 'resources/todos-conditional'],
  ['resources/cats', 'resources/todos-list']
]

/**
 * Runs each group of test files in one child process with `env` (a process costs about 3 s
 * of CPU before its first test), the groups side by side; returns each one's exit code and output.
 */
async function runFiles(groups: string[][], env: Record<string, string>) {
  return Promise.all(
    groups.map(async (files) => {
      const imports = files.map((file) => `await import(${JSON.stringify(pathToFileURL(join(ROOT, 'test', `${file}.test.ts`)).href)})`).join('\n')
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', imports], {
        cwd: ROOT,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe']
      })
      let output = ''
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
      return { files: files.map((file) => `test/${file}.test.ts`).join(', '), code, output }
    })
  )
}

t.test('the HTTP contract tests pass with DATABASE_URL on PgBouncer in transaction mode, prepared statements off', async (t) => {
  const results = await runFiles(CONTRACT_FILES, { TEST_POOLER: 'pgbouncer', TEST_POOLER_PREPARED: 'false' })
  for (const { files, code, output } of results) {
    const passed = output.match(/^\s*ok \d+/gm)?.length ?? 0
    const failed = output.match(/^\s*not ok \d+/gm) ?? []
    t.equal(code, 0, `${files} pass through PgBouncer (${passed} passing)`, code === 0 ? {} : { failed, output: output.slice(-4000) })
    t.ok(passed > 50, `${files} ran their tests`)
  }
})

const installed = await promisify(execFile)(PROGRAMS.pgbouncer.path, ['--version']).then(
  ({ stdout }) => (/PgBouncer (\d+)\.(\d+)/.exec(stdout) ?? []).slice(1).map(Number),
  () => [0, 0]
)
const [major = 0, minor = 0] = installed
// Debian 12's 1.18 cannot carry them: DATABASE_PREPARED_STATEMENTS=false (compose.scaled.yaml's setting) is the only way there.
const preparedSkip = major === 1 && minor < 21 ? `PgBouncer ${major}.${minor} predates prepared statements in transaction mode (1.21): this run needs a newer one` : false
t.test('with PgBouncer 1.21+ and max_prepared_statements, the contract tests pass with prepared statements on', { skip: preparedSkip }, async (t) => {
  const results = await runFiles(CONTRACT_FILES, { TEST_POOLER: 'pgbouncer', TEST_POOLER_PREPARED: 'true', TEST_POOLER_EXTRA: 'max_prepared_statements = 200' })
  for (const { files, code, output } of results) t.equal(code, 0, `${files} pass with prepared statements through PgBouncer ${major}.${minor}`, { output: output.slice(-4000) })
})
