/**
 * `make bench`: the service against the bare floor (bench/baseline-server.mjs), side by
 * side on one throwaway embedded PostgreSQL holding 100 000 todos.
 *
 * - The service runs compiled, with `npm start`'s command (as the image does), as in production: NODE_ENV=production,
 *   LOG_LEVEL=info (its log goes to /dev/null), the default pool, every request with a bearer token.
 * - The price of the token: a second instance in AUTH_MODE=local (otherwise the same
 *   settings) answers the same requests without a token and with one, side by side.
 * - The load comes from wrk (Debian's package, installed when missing), a process of its
 *   own, one thread, 32 connections.
 * - Rounds alternate which server goes first; each figure is the median over the rounds,
 *   with the spread (lowest–highest) beside it. RSS is read after every round of load.
 *
 * BENCH_ROUNDS (default 4: 60 s of load per server) and BENCH_SECONDS (default 5) change the run's length.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { newToken } from '../src/auth/tokens.js'
import { withClient } from '../src/db/client.js'
import { runMigrations } from '../src/db/migrate.js'
import { destroyEmbeddedPostgres, startEmbeddedPostgres } from '../src/dev/embedded.js'
import { freePort } from '../test/support/ports.js'

const sh = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const CONNECTIONS = 32
const ROWS = 100_000

interface Run {
  rps: number
  p99: number
  failed: number
}

async function ensureWrk(): Promise<string> {
  if (existsSync('/usr/bin/wrk')) return '/usr/bin/wrk'
  if (process.getuid?.() !== 0) throw new Error('wrk is missing: apt-get install wrk')
  console.error('installing Debian wrk for the benchmark (once)')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  await sh('apt-get', ['install', '-y', '--no-install-recommends', 'wrk'], { env }).catch(async () => {
    await sh('apt-get', ['update'], { env })
    await sh('apt-get', ['install', '-y', '--no-install-recommends', 'wrk'], { env })
  })
  return '/usr/bin/wrk'
}

const SCRIPTS = {
  'GET /todos/:id': `request = function() return wrk.format("GET", "/todos/" .. math.random(1, ${ROWS})) end`,
  'GET /todos?limit=100': `request = function() return wrk.format("GET", "/todos?limit=100") end`,
  'POST /todos': `wrk.method = "POST"\nwrk.path = "/todos"\nwrk.body = '{"title":"bench: water the plants"}'\nwrk.headers["Content-Type"] = "application/json"`
} as const
type Scenario = keyof typeof SCRIPTS
/** The scenarios whose token price is measured (AUTH_MODE=local, without and with a token). */
const AUTH_SCENARIOS = ['GET /todos/:id', 'GET /todos?limit=100'] as const
/** A script that also sends the token (the floor ignores the header). */
const withToken = (script: string, token: string) => `${script}\nwrk.headers["Authorization"] = "Bearer ${token}"`

/** Seconds → ms from wrk's latency text (`812.00us`, `2.31ms`, `1.02s`). */
const toMs = (text: string) => {
  const [, value = '0', unit = 'ms'] = /([\d.]+)(us|ms|s)/.exec(text) ?? []
  return Number(value) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1)
}

async function load(wrk: string, script: string, port: number, seconds: number): Promise<Run> {
  const { stdout } = await sh(wrk, ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', script, `http://127.0.0.1:${port}`])
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0)
  const p99 = toMs(/\s99%\s+(\S+)/.exec(stdout)?.[1] ?? '0ms')
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)
  const errors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0
  return { rps, p99, failed: non2xx + errors }
}

async function start(name: string, args: string[], env: Record<string, string>, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`)
    const ok = await fetch(`http://127.0.0.1:${port}${name === 'floor' ? '/todos/1' : '/health/ready'}`).then((r) => r.ok, () => false)
    if (ok) return child
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${name} did not come up`)
}

const rssMiB = async (pid: number) => Math.round(Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024)
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}
const spread = (values: number[], digits = 0) => `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`

const wrk = await ensureWrk()
console.error('building dist/ (npm run build)')
await sh('npm', ['run', 'build'], { cwd: ROOT })

const dataDir = join(ROOT, '.data/bench-postgres')
await destroyEmbeddedPostgres(dataDir)
const database = await startEmbeddedPostgres({ dataDir, port: await freePort(), user: 'bench', password: 'bench', database: 'bench', ephemeral: true })
const scripts = await mkdtemp(join(tmpdir(), 'todos-api-bench-'))
const servers: ChildProcess[] = []
try {
  await runMigrations(database.connectionString)
  console.error(`loading ${ROWS} todos`)
  // The local user's, who also has a token: without a token (AUTH_MODE=local) and with it,
  // a request sees the same rows.
  const token = newToken()
  await withClient(database.connectionString, async (client) => {
    await client.query(
      `INSERT INTO todos (owner_id, title, description, completed, "order", due_date)
       SELECT (SELECT id FROM users WHERE builtin), 'Task ' || i || ': ' || md5(i::text), CASE WHEN i % 3 = 0 THEN 'notes for ' || i END, i % 4 = 0,
              CASE WHEN i % 10 = 0 THEN NULL ELSE i END, CASE WHEN i % 5 = 0 THEN NULL ELSE now() + (i % 365) * interval '1 day' END
       FROM generate_series(1, ${ROWS}) i`
    )
    await client.query(`INSERT INTO api_tokens (user_id, name, token_hash, prefix) SELECT id, 'bench', $1, $2 FROM users WHERE builtin`, [token.hash, token.display])
    await client.query('VACUUM ANALYZE')
  })
  const scriptFile = (name: string) => join(scripts, `${name.replace(/\W+/g, '_')}.lua`)
  for (const [name, text] of Object.entries(SCRIPTS)) {
    await writeFile(scriptFile(name), withToken(text, token.secret))
    await writeFile(scriptFile(`${name} anonymous`), text)
  }
  const scriptFor = (scenario: Scenario, anonymous = false) => scriptFile(anonymous ? `${scenario} anonymous` : scenario)

  const url = database.connectionString
  const ports = { floor: await freePort(), api: await freePort(), quiet: await freePort(), local: await freePort() }
  const apiEnv = (port: number, level: string) => ({ NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), DATABASE_URL: url, LOG_LEVEL: level })
  // AUTH_MODE=local is refused in production; the only other differences of `development`
  // are defaults, set here to production's (no CORS).
  const localEnv = { ...apiEnv(ports.local, 'info'), NODE_ENV: 'development', AUTH_MODE: 'local', CORS_ORIGINS: 'none' }
  const floor = await start('floor', ['bench/baseline-server.mjs', url, String(ports.floor)], {}, ports.floor)
  // Exactly as the image runs it: npm start's command, without npm.
  const startArgs = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start.split(' ').slice(1)
  const api = await start('api', startArgs, apiEnv(ports.api, 'info'), ports.api)
  const quiet = await start('api (warn)', startArgs, apiEnv(ports.quiet, 'warn'), ports.quiet)
  const local = await start('api (local)', startArgs, localEnv, ports.local)
  servers.push(floor, api, quiet, local)

  // Warm-up: JIT, pool connections, prepared statements, on every server and scenario.
  for (const port of Object.values(ports)) for (const scenario of Object.keys(SCRIPTS) as Scenario[]) await load(wrk, scriptFor(scenario), port, 1)
  for (const scenario of AUTH_SCENARIOS) await load(wrk, scriptFor(scenario, true), ports.local, 1)
  const tokenPrice: Record<string, { local: Run[]; token: Run[] }> = {}

  const results: Record<string, Record<string, Run[]>> = {}
  const rss: Record<string, number[]> = { floor: [], api: [] }
  for (let round = 0; round < ROUNDS; round++) {
    for (const scenario of Object.keys(SCRIPTS) as Scenario[]) {
      const order = round % 2 === 0 ? (['floor', 'api'] as const) : (['api', 'floor'] as const)
      for (const server of order) ((results[scenario] ??= {})[server] ??= []).push(await load(wrk, scriptFor(scenario), ports[server], SECONDS))
    }
    // The cost of the access log: the same service at LOG_LEVEL=warn, on the lookup by id.
    ;((results['GET /todos/:id (LOG_LEVEL=warn)'] ??= {}).api ??= []).push(await load(wrk, scriptFor('GET /todos/:id'), ports.quiet, SECONDS))
    // The price of the token, on one AUTH_MODE=local instance: the same request without and with it.
    for (const scenario of AUTH_SCENARIOS) {
      const runs = (tokenPrice[scenario] ??= { local: [], token: [] })
      for (const anonymous of round % 2 === 0 ? [true, false] : [false, true]) {
        ;(anonymous ? runs.local : runs.token).push(await load(wrk, scriptFor(scenario, anonymous), ports.local, SECONDS))
      }
    }
    ;(rss.floor as number[]).push(await rssMiB(floor.pid ?? 0))
    ;(rss.api as number[]).push(await rssMiB(api.pid ?? 0))
  }

  const lines = [
    `${ROWS} todos, todos-api at production settings with a bearer token; wrk with ${CONNECTIONS} connections, ${ROUNDS} rounds of ${SECONDS} s per scenario and server, alternating which goes first; medians (lowest–highest)`,
    '',
    '| scenario | floor req/s | todos-api req/s | ratio | floor p99 ms | todos-api p99 ms | failed |',
    '| --- | --- | --- | --- | --- | --- | --- |'
  ]
  for (const [scenario, byServer] of Object.entries(results)) {
    const base = byServer.floor ?? results['GET /todos/:id']?.floor ?? []
    const app = byServer.api ?? []
    const ratios = app.map((run, i) => run.rps / (base[i]?.rps ?? 1))
    const failed = [...(byServer.floor ?? []), ...app].reduce((sum, run) => sum + run.failed, 0)
    lines.push(
      `| ${scenario} | ${byServer.floor ? `${median(base.map((r) => r.rps)).toFixed(0)} (${spread(base.map((r) => r.rps))})` : '(as above)'} | ` +
        `${median(app.map((r) => r.rps)).toFixed(0)} (${spread(app.map((r) => r.rps))}) | ${median(ratios).toFixed(2)}× (${spread(ratios, 2)}) | ` +
        `${byServer.floor ? median(base.map((r) => r.p99)).toFixed(2) : '–'} | ${median(app.map((r) => r.p99)).toFixed(2)} | ${failed} |`
    )
  }
  lines.push(
    '',
    'The price of the token: one AUTH_MODE=local instance, the same requests without a token (as the local user) and with one (of the same user)',
    '',
    '| scenario | no token req/s | with token req/s | ratio | no token p99 ms | with token p99 ms | failed |',
    '| --- | --- | --- | --- | --- | --- | --- |'
  )
  for (const [scenario, runs] of Object.entries(tokenPrice)) {
    const ratios = runs.token.map((run, i) => run.rps / (runs.local[i]?.rps ?? 1))
    const failed = [...runs.local, ...runs.token].reduce((sum, run) => sum + run.failed, 0)
    lines.push(
      `| ${scenario} | ${median(runs.local.map((r) => r.rps)).toFixed(0)} (${spread(runs.local.map((r) => r.rps))}) | ` +
        `${median(runs.token.map((r) => r.rps)).toFixed(0)} (${spread(runs.token.map((r) => r.rps))}) | ${median(ratios).toFixed(2)}× (${spread(ratios, 2)}) | ` +
        `${median(runs.local.map((r) => r.p99)).toFixed(2)} | ${median(runs.token.map((r) => r.p99)).toFixed(2)} | ${failed} |`
    )
  }
  lines.push('', `RSS after ${ROUNDS * Object.keys(SCRIPTS).length * SECONDS} s of load: floor ${(rss.floor as number[]).at(-1)} MiB, todos-api ${(rss.api as number[]).at(-1)} MiB (per round: ${(rss.api as number[]).join(', ')})`)
  console.log(lines.join('\n'))
} finally {
  for (const server of servers) server.kill('SIGTERM')
  await rm(scripts, { recursive: true, force: true })
  await database.release()
  await destroyEmbeddedPostgres(dataDir)
}
