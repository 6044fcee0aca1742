/**
 * Runs once before the test files (tap's `before`). Builds dist/ from src/ (incremental:
 * the spawned servers and tools run it, compiled), starts one embedded PostgreSQL for the
 * whole run (or uses TEST_DATABASE_URL, whose user needs CREATEDB), and migrates a
 * template database that each test file clones into a database of its own.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import pg from 'pg'
import { destroyEmbeddedPostgres, startEmbeddedPostgres } from '../../src/dev/embedded.js'
import { clusterDir } from '../../src/dev/embedded-host.js'
import { runMigrations } from '../../src/db/migrate.js'
import { ensurePrograms } from '../support/packages.js'
import { freePort } from '../support/ports.js'
import { STATE_FILE, TEMPLATE_CLUSTER_DIR, TEST_DATA_DIR, type ClusterState } from './cluster.js'

const TEMPLATE = 'todos_test_template'

// Type-checks src/ and the tests too (test/tsconfig.json references src/), while the
// database starts: a type error stops the run below.
const tsc = fileURLToPath(import.meta.resolve('typescript/bin/tsc'))
const building = new Promise<number | null>((resolve) =>
  spawn(process.execPath, [tsc, '-b', fileURLToPath(new URL('../tsconfig.json', import.meta.url))], { stdio: 'inherit' }).on('exit', resolve)
)
// Every test file runs: in a folder tap's `include` names, or in its folder's process
// (test/<folder>.test.ts importing ./<folder>/, see test/support/folder.ts). A folder with
// neither would be skipped unseen.
const testDir = fileURLToPath(new URL('..', import.meta.url))
const include = (JSON.parse(await readFile(join(testDir, '../package.json'), 'utf8')) as { tap: { include: string[] } }).tap.include
const runsFolder = (folder: string) => existsSync(join(testDir, `${folder}.test.ts`)) && readFileSync(join(testDir, `${folder}.test.ts`), 'utf8').includes(`'./${folder}/'`)
const runs = (file: string) => Number(include.includes(`test/${dirname(file)}/*.test.ts`)) + Number(runsFolder(dirname(file)))
const nested = (await readdir(testDir, { recursive: true })).filter((file) => file.endsWith('.test.ts') && dirname(file) !== '.')
if (nested.some((file) => runs(file) !== 1)) {
  const [never, twice] = [0, 2].map((count) => nested.filter((file) => runs(file) === count).join(', ') || 'none')
  process.stderr.write(`# every test file must run once (a tap include, or test/<folder>.test.ts): never ${never}; twice ${twice}\n`)
  process.exit(1)
}
const external = process.env.TEST_DATABASE_URL

let state: ClusterState
if (external) {
  const url = new URL(external)
  url.pathname = '/postgres'
  state = { adminUrl: url.toString(), templateDatabase: TEMPLATE }
} else {
  // A run that was interrupted may have left its server running: stop it before its data goes.
  await destroyEmbeddedPostgres(TEST_DATA_DIR)
  const server = await startEmbeddedPostgres({
    dataDir: TEST_DATA_DIR,
    port: await freePort(),
    user: 'postgres',
    password: 'postgres',
    database: 'postgres',
    ephemeral: true
  })
  state = { adminUrl: server.connectionString, templateDatabase: TEMPLATE, embeddedDataDir: TEST_DATA_DIR }
}

const admin = new pg.Client({ connectionString: state.adminUrl })
await admin.connect()
await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`)
await admin.query(`CREATE DATABASE ${TEMPLATE}`)
await admin.end()
const templateUrl = new URL(state.adminUrl)
templateUrl.pathname = `/${TEMPLATE}`
await runMigrations(templateUrl.toString())

// The cluster that private clusters (test/support/private-cluster.ts) are copies of.
await destroyEmbeddedPostgres(TEMPLATE_CLUSTER_DIR)
const template = await startEmbeddedPostgres({ dataDir: TEMPLATE_CLUSTER_DIR, port: await freePort(), user: 'postgres', password: 'postgres', database: 'app', ephemeral: true })
await template.release()
state.clusterTemplate = await clusterDir(TEMPLATE_CLUSTER_DIR)

const problems = await ensurePrograms((message) => process.stderr.write(`# ${message}\n`))
if (problems.chromium) state.chromiumProblem = problems.chromium
state.programProblems = problems

if ((await building) !== 0) {
  process.stderr.write('# the build failed (tsc -b test/tsconfig.json): no test runs\n')
  if (state.embeddedDataDir) await destroyEmbeddedPostgres(state.embeddedDataDir)
  process.exit(1)
}

await mkdir(dirname(STATE_FILE), { recursive: true })
await writeFile(STATE_FILE, JSON.stringify(state, null, 2))
