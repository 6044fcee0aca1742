/**
 * `make bench`: the service against the bare floor (bench/baseline-server.mjs), side by
 * side on one throwaway embedded PostgreSQL holding 100 000 todos.
 *
 * - The service runs compiled, with `npm start`'s command (as the image does), as in production: NODE_ENV=production,
 *   LOG_LEVEL=info (its log goes to /dev/null), metrics on, the default pool, every request with a bearer token.
 * - The floor gets the same requests, token included, and finds the token's user inside
 *   its one statement, as the service must (a revoked token is refused at once).
 * - The price of the token: a second instance in AUTH_MODE=local (otherwise the same
 *   settings) answers the same requests without a token and with one, side by side; and
 *   that instance without a token against the floor without one (the local user's rows).
 * - The load comes from wrk (Debian's package, installed when missing), a process of its
 *   own, one thread, 32 connections; and the lookup by id once more from one connection,
 *   where the service has nothing to batch (src/resources/engine/batching.ts): its request path alone.
 * - Rounds alternate which server goes first; each figure is the median over the rounds,
 *   with the spread (lowest–highest) beside it. RSS is read after every round of load.
 *
 * BENCH_ROUNDS (default 4: 80 s of load per server) and BENCH_SECONDS (default 5) change the run's length.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../test/support/ports.js'
import { CONNECTIONS, ROOT, ROUNDS, ROWS, SECONDS, benchDatabase, ensureWrk, stopAll, load, median, rssMiB, sh, spread, start, startArgs, type Run, QUOTA_ON } from './lib.js'

const SCRIPTS = {
  'GET /todos/:id': `request = function() return wrk.format("GET", "/todos/" .. math.random(1, ${ROWS})) end`,
  'GET /todos?limit=100': `request = function() return wrk.format("GET", "/todos?limit=100") end`,
  'POST /todos': `wrk.method = "POST"\nwrk.path = "/todos"\nwrk.body = '{"title":"bench: water the plants"}'\nwrk.headers["Content-Type"] = "application/json"`
} as const
type Scenario = keyof typeof SCRIPTS
/** The scenarios whose token price is measured (AUTH_MODE=local, without and with a token). */
const AUTH_SCENARIOS = ['GET /todos/:id', 'GET /todos?limit=100'] as const
/** The row of the lookup by id without a token, on either side. */
const NO_TOKEN = 'GET /todos/:id without a token (AUTH_MODE=local; the floor as the local user)'
/** The row of the lookup by id from one connection: one request at a time, nothing to batch. */
const ONE_AT_A_TIME = 'GET /todos/:id from 1 connection (one request at a time: nothing to batch)'
/** A script that also sends the token. */
const withToken = (script: string, token: string) => `${script}\nwrk.headers["Authorization"] = "Bearer ${token}"`

const wrk = await ensureWrk()
console.error('building dist/ (npm run build)')
await sh('npm', ['run', 'build'], { cwd: ROOT })

const database = await benchDatabase('bench-postgres')
const scripts = await mkdtemp(join(tmpdir(), 'todos-api-bench-'))
const servers: ChildProcess[] = []
try {
  const token = { secret: database.token }
  const scriptFile = (name: string) => join(scripts, `${name.replace(/\W+/g, '_')}.lua`)
  for (const [name, text] of Object.entries(SCRIPTS)) {
    await writeFile(scriptFile(name), withToken(text, token.secret))
    await writeFile(scriptFile(`${name} anonymous`), text)
  }
  const scriptFor = (scenario: Scenario, anonymous = false) => scriptFile(anonymous ? `${scenario} anonymous` : scenario)

  const url = database.url
  const ports = { floor: await freePort(), api: await freePort(), quiet: await freePort(), local: await freePort() }
  // As deployed: each with its metrics listener (bench/observability.ts measures its price).
  const apiEnv = async (port: number, level: string) => ({ NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: String(await freePort()), DATABASE_URL: url, LOG_LEVEL: level, ...QUOTA_ON })
  // AUTH_MODE=local is refused in production; the only other differences of `development`
  // are defaults, set here to production's (no CORS).
  const localEnv = { ...(await apiEnv(ports.local, 'info')), NODE_ENV: 'development', AUTH_MODE: 'local', CORS_ORIGINS: 'none' }
  const floor = await start('floor', ['bench/baseline-server.mjs', url, String(ports.floor)], {}, ports.floor)
  // Exactly as the image runs it: npm start's command, without npm.
  const args = await startArgs()
  const api = await start('api', args, await apiEnv(ports.api, 'info'), ports.api)
  const quiet = await start('api (warn)', args, await apiEnv(ports.quiet, 'warn'), ports.quiet)
  const local = await start('api (local)', args, localEnv, ports.local)
  servers.push(floor, api, quiet, local)

  // Warm-up: JIT, pool connections, prepared statements, on every server and scenario.
  for (const port of Object.values(ports)) for (const scenario of Object.keys(SCRIPTS) as Scenario[]) await load(wrk, scriptFor(scenario), port, 1)
  for (const scenario of AUTH_SCENARIOS) await load(wrk, scriptFor(scenario, true), ports.local, 1)
  await load(wrk, scriptFor('GET /todos/:id', true), ports.floor, 1)
  const tokenPrice: Record<string, { local: Run[]; token: Run[] }> = {}

  const results: Record<string, Record<string, Run[]>> = {}
  const rss: Record<string, number[]> = { floor: [], api: [] }
  for (let round = 0; round < ROUNDS; round++) {
    for (const scenario of Object.keys(SCRIPTS) as Scenario[]) {
      const order = round % 2 === 0 ? (['floor', 'api'] as const) : (['api', 'floor'] as const)
      for (const server of order) ((results[scenario] ??= {})[server] ??= []).push(await load(wrk, scriptFor(scenario), ports[server], SECONDS))
    }
    // One request at a time: nothing for the service to batch (src/resources/engine/batching.ts), so this
    // is its request path alone against the floor's.
    const single = (results[ONE_AT_A_TIME] ??= { floor: [], api: [] })
    for (const server of round % 2 === 0 ? (['floor', 'api'] as const) : (['api', 'floor'] as const)) {
      single[server]?.push(await load(wrk, scriptFor('GET /todos/:id'), ports[server], SECONDS, 1))
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
    // Without authentication on either side: the local instance's lookups without a token
    // (just measured above) against the floor's, as the local user.
    const anonymous = (results[NO_TOKEN] ??= { floor: [], api: [] })
    anonymous.floor?.push(await load(wrk, scriptFor('GET /todos/:id', true), ports.floor, SECONDS))
    anonymous.api?.push(tokenPrice['GET /todos/:id']?.local.at(-1) as Run)
    ;(rss.floor as number[]).push(await rssMiB(floor.pid ?? 0))
    ;(rss.api as number[]).push(await rssMiB(api.pid ?? 0))
  }

  const lines = [
    `${ROWS} todos, todos-api at production settings, every request with a bearer token (the floor checks it too); wrk with ${CONNECTIONS} connections, ${ROUNDS} rounds of ${SECONDS} s per scenario and server, alternating which goes first; medians (lowest–highest)`,
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
  lines.push('', `RSS after ${ROUNDS * (Object.keys(SCRIPTS).length + 1) * SECONDS} s of load: floor ${(rss.floor as number[]).at(-1)} MiB, todos-api ${(rss.api as number[]).at(-1)} MiB (per round: ${(rss.api as number[]).join(', ')})`)
  console.log(lines.join('\n'))
} finally {
  await stopAll(servers)
  await rm(scripts, { recursive: true, force: true })
  await database.close()
}
