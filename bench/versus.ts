/**
 * `make bench-versus other=<checkout>`: this checkout's build against another's (a
 * `git worktree` of an earlier commit, built with `npm run build`), side by side with the
 * floor on one throwaway embedded PostgreSQL holding 100 000 todos: the scenarios of
 * `make bench` at 32 connections, and the lookup by id from one connection. Rounds
 * alternate the order; medians (lowest–highest) of each build's ratio to the floor
 * measured in the same round. What a change did, rather than what a day's machine does.
 *
 * BENCH_ROUNDS (default 6) and BENCH_SECONDS (default 4).
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { freePort } from '../test/support/ports.js'
import { ROOT, ROWS, benchDatabase, ensureWrk, load, median, sh, spread, start, startArgs, stopAll, type Run, QUOTA_ON } from './lib.js'

const other = process.env.BENCH_OTHER ?? process.argv[2]
if (!other) throw new Error('usage: make bench-versus other=<checkout whose dist/ to compare with>')
const rounds = Number(process.env.BENCH_ROUNDS ?? 6)
const seconds = Number(process.env.BENCH_SECONDS ?? 4)

const SCRIPTS = {
  'GET /todos/:id': `request = function() return wrk.format("GET", "/todos/" .. math.random(1, ${ROWS})) end`,
  'GET /todos?limit=100': `request = function() return wrk.format("GET", "/todos?limit=100") end`,
  'POST /todos': `wrk.method = "POST"\nwrk.path = "/todos"\nwrk.body = '{"title":"bench: water the plants"}'\nwrk.headers["Content-Type"] = "application/json"`
} as const
const SCENARIOS = [...Object.keys(SCRIPTS).map((name) => ({ name, script: name, connections: 32 })), { name: 'GET /todos/:id from 1 connection', script: 'GET /todos/:id', connections: 1 }]

const wrk = await ensureWrk()
console.error('building dist/ (npm run build)')
await sh('npm', ['run', 'build'], { cwd: ROOT })
const database = await benchDatabase('bench-versus-postgres')
const scripts = await mkdtemp(join(tmpdir(), 'todos-api-bench-'))
const servers: ChildProcess[] = []
try {
  for (const [name, text] of Object.entries(SCRIPTS)) await writeFile(join(scripts, `${name.replace(/\W+/g, '_')}.lua`), `${text}\nwrk.headers["Authorization"] = "Bearer ${database.token}"`)
  const scriptFor = (name: string) => join(scripts, `${name.replace(/\W+/g, '_')}.lua`)
  const ports = { floor: await freePort(), this: await freePort(), other: await freePort() }
  // Each its own metrics port (an earlier build ignores the setting).
  const env = async (port: number) => ({ NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: String(await freePort()), DATABASE_URL: database.url, LOG_LEVEL: 'info', ...QUOTA_ON })
  const args = await startArgs()
  servers.push(await start('floor', ['bench/baseline-server.mjs', database.url, String(ports.floor)], {}, ports.floor))
  servers.push(await start('api', args, await env(ports.this), ports.this))
  servers.push(await start('api', args.map((arg) => (arg.endsWith('dist/server.js') ? resolve(other, arg) : arg)), await env(ports.other), ports.other))
  for (const port of Object.values(ports)) for (const { script, connections } of SCENARIOS) await load(wrk, scriptFor(script), port, 1, connections)

  const runs: Record<string, Record<keyof typeof ports, Run[]>> = {}
  for (let round = 0; round < rounds; round++) {
    for (const { name, script, connections } of SCENARIOS) {
      const order = (['floor', 'this', 'other'] as const).slice()
      if (round % 2) order.reverse()
      for (const server of order) ((runs[name] ??= { floor: [], this: [], other: [] })[server]).push(await load(wrk, scriptFor(script), ports[server], seconds, connections))
    }
  }
  const lines = [
    `${rounds} rounds of ${seconds} s, alternating; ratios to the floor of the same round, medians (lowest–highest); other: ${other}`,
    '',
    '| scenario | floor req/s | this ÷ floor | other ÷ floor | this ÷ other | p99 ms floor, this, other |',
    '| --- | --- | --- | --- | --- | --- |'
  ]
  for (const [name, { floor, this: current, other: earlier }] of Object.entries(runs)) {
    const ratio = (runsOf: Run[], base: Run[]) => runsOf.map((run, i) => run.rps / (base[i]?.rps ?? 1))
    const cell = (values: number[]) => `${median(values).toFixed(2)}× (${spread(values, 2)})`
    lines.push(
      `| ${name} | ${median(floor.map((run) => run.rps)).toFixed(0)} | ${cell(ratio(current, floor))} | ${cell(ratio(earlier, floor))} | ${cell(ratio(current, earlier))} | ` +
        `${[floor, current, earlier].map((set) => median(set.map((run) => run.p99)).toFixed(2)).join(', ')} |`
    )
  }
  console.log(lines.join('\n'))
} finally {
  await stopAll(servers)
  await rm(scripts, { recursive: true, force: true })
  await database.close()
}
