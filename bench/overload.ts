/**
 * Overload (part of `make bench`): the compiled service with load shedding on (the
 * defaults, with SHED_MAX_IN_FLIGHT=24 and DATABASE_MAX_QUEUE=10 set for this route), at
 * the defaults alone, and off (every limit 0), one instance each,
 * GET /todos?limit=1&count=true with a token (a count of 100 000 rows: work for
 * PostgreSQL, a small answer, so that this machine's capacity is low enough for one
 * generator in this process to offer three times over without becoming the bottleneck).
 * First its capacity (wrk, 16 connections, the shedding build), then an open-loop load at
 * three times that: requests sent on a fixed schedule whatever the answers, each given
 * 10 s. Offered and answered rates, the share of 503s, the p99 of the 2xx answers and the
 * goodput. Goals, shedding on: p99 of 2xx within 3x the p99 at capacity, goodput at least
 * 90 % of capacity. PostgreSQL and the services run in a CPU cgroup each, as in compose
 * (cpu-groups.ts).
 */
import http from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../test/support/ports.js'
import { cpuGroups } from './cpu-groups.js'
import { QUOTA_ON, ROOT, benchDatabase, ensureWrk, load, sh, start, startArgs, stopAll } from './lib.js'

const SECONDS = Number(process.env.BENCH_OVERLOAD_SECONDS ?? 10)
const PATH = '/todos?limit=1&count=true'
const IN_FLIGHT = '24'
const MAX_QUEUE = '10'
const CAPACITY_CONNECTIONS = 16
const wrk = await ensureWrk()
if (!process.argv.includes('--no-build')) await sh('npm', ['run', 'build'], { cwd: ROOT })
const database = await benchDatabase('bench-overload')
const scripts = await mkdtemp(join(tmpdir(), 'todos-api-bench-'))
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((values.length * p) / 100))] ?? 0

/** Sends `rate` requests a second for SECONDS on a fixed schedule; what came back. */
async function openLoop(port: number, rate: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2000 })
  const latencies: number[] = []
  const statuses = new Map<string, number>()
  const pending: Array<Promise<void>> = []
  const begin = performance.now()
  const total = Math.round(rate * SECONDS)
  for (let n = 0; n < total; n++) {
    const due = begin + (n * 1000) / rate
    const wait = due - performance.now()
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
    const sent = performance.now()
    pending.push(
      new Promise<void>((resolve) => {
        const request = http.get({ host: '127.0.0.1', port, path: PATH, agent, headers: { authorization: `Bearer ${database.token}` }, timeout: 10_000 }, (response) => {
          response.resume()
          response.on('end', () => {
            const status = response.statusCode ?? 0
            const key = status === 503 ? `503${response.headers['retry-after'] ? '' : ' without Retry-After'}` : status >= 200 && status < 300 ? '2xx' : String(status)
            statuses.set(key, (statuses.get(key) ?? 0) + 1)
            if (key === '2xx') latencies.push(performance.now() - sent)
            resolve()
          })
        })
        request.on('timeout', () => request.destroy(new Error('timeout')))
        request.on('error', (error) => {
          statuses.set(`error: ${error.message}`, (statuses.get(`error: ${error.message}`) ?? 0) + 1)
          resolve()
        })
      })
    )
  }
  const offeredSeconds = (performance.now() - begin) / 1000
  await Promise.all(pending)
  agent.destroy()
  const ok = statuses.get('2xx') ?? 0
  return { offered: total / offeredSeconds, answered: [...statuses.values()].reduce((a, b) => a + b, 0), ok, goodput: ok / SECONDS, p99: percentile(latencies, 99), statuses }
}

const servers = []
// PostgreSQL and the service in CPU groups of their own, as in compose (see cpu-groups.ts).
const groups = await cpuGroups()
try {
  if ('add' in groups) await groups.add('database', await database.postmasterPid())
  const args = await startArgs()
  const base = async (port: number) => ({ NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), DATABASE_URL: database.url, LOG_LEVEL: 'warn', METRICS_PORT: '0', ...QUOTA_ON })
  const onPort = await freePort()
  const offPort = await freePort()
  const defaultsPort = await freePort()
  // In-flight limit about three times the concurrency at capacity for this page: SHED_MAX_IN_FLIGHT is for each service to set from its throughput and latency budget.
  servers.push(await start('shedding on', args, { ...(await base(onPort)), SHED_MAX_IN_FLIGHT: IN_FLIGHT, DATABASE_MAX_QUEUE: MAX_QUEUE }, onPort))
  servers.push(await start('shedding at the defaults', args, await base(defaultsPort), defaultsPort))
  servers.push(await start('shedding off', args, { ...(await base(offPort)), DATABASE_MAX_QUEUE: '0', DATABASE_MAX_WAIT_MS: '0', SHED_EVENT_LOOP_DELAY_MS: '0', SHED_MAX_IN_FLIGHT: '0' }, offPort))
  // One group for the three: only one of them is under load at a time.
  if ('add' in groups) for (const server of servers) if (server.exitCode === null && server.pid !== undefined) await groups.add('service', server.pid)
  const script = join(scripts, 'page.lua')
  await writeFile(script, `wrk.path = "${PATH}"\nwrk.headers["Authorization"] = "Bearer ${database.token}"`)
  await load(wrk, script, onPort, 2, CAPACITY_CONNECTIONS)
  await load(wrk, script, offPort, 2, CAPACITY_CONNECTIONS)
  await load(wrk, script, defaultsPort, 2, CAPACITY_CONNECTIONS)
  const capacity = await load(wrk, script, onPort, 5, CAPACITY_CONNECTIONS)
  // What it serves: 2xx answers only (wrk's rate counts any answer, and a limit may shed some even here).
  const served = capacity.rps - capacity.failed / 5
  const rate = 3 * served
  const on = await openLoop(onPort, rate)
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const defaults = await openLoop(defaultsPort, rate)
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const off = await openLoop(offPort, rate)
  const row = (name: string, run: Awaited<ReturnType<typeof openLoop>>) => {
    const other = [...run.statuses].filter(([key]) => key !== '2xx' && key !== '503').map(([key, count]) => `${key}: ${count}`).join(', ') || 'none'
    return `| ${name} | ${run.offered.toFixed(0)} | ${(run.answered / SECONDS).toFixed(0)} | ${(((run.statuses.get('503') ?? 0) / run.answered) * 100).toFixed(0)} % | ${run.p99.toFixed(0)} ms | ${run.goodput.toFixed(0)} (${((run.goodput / served) * 100).toFixed(0)} %) | ${other} |`
  }
  console.log(
    [
      `PostgreSQL and the service ${'add' in groups ? 'in CPU cgroups of their own, as in compose' : `sharing the CPU without cgroups (${groups.unavailable}): each busy backend takes as much CPU as the service, and the figures show it`}.`,
      `GET ${PATH} with a token. Capacity (wrk, ${CAPACITY_CONNECTIONS} connections, shedding on, SHED_MAX_IN_FLIGHT=${IN_FLIGHT}, DATABASE_MAX_QUEUE=${MAX_QUEUE}): ${served.toFixed(0)}/s of 2xx, p99 ${capacity.p99.toFixed(0)} ms. Then ${SECONDS} s open-loop at 3× that.`,
      '',
      '| shedding | offered /s | answered /s | 503 | p99 of 2xx | goodput /s (of capacity) | other answers |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      row(`on (in flight ${IN_FLIGHT}, queue ${MAX_QUEUE})`, on),
      row('the defaults', defaults),
      row('off', off),
      '',
      `Goals, shedding on: p99 of 2xx ≤ ${(3 * capacity.p99).toFixed(0)} ms (3× at capacity): ${on.p99 <= 3 * capacity.p99 ? 'met' : 'missed'}; goodput ≥ 90 % of capacity: ${on.goodput >= 0.9 * served ? 'met' : 'missed'}. At the defaults: ${defaults.p99 <= 3 * capacity.p99 ? 'met' : 'missed'} and ${defaults.goodput >= 0.9 * served ? 'met' : 'missed'}.`
    ].join('\n')
  )
} finally {
  try {
    await stopAll(servers)
    await rm(scripts, { recursive: true, force: true })
    await database.close()
  } finally {
    if ('remove' in groups) await groups.remove()
  }
}
