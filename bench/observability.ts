/**
 * The price of observability (part of `make bench`): the same compiled service, at
 * production settings, with metrics off (METRICS_PORT=0), metrics on (the default), and
 * metrics on with OpenTelemetry tracing at 100 % and at 10 % sampling, exporting OTLP
 * (http/protobuf, the default) to a sink in this process that reads and drops every batch.
 * wrk, 32 connections, GET /todos/:id with a token; rounds alternate the order of the
 * servers; medians with the spread. Goal: metrics cost at most 3 % of the lookups' rate.
 * Beside the rate, each server's CPU per request (its own user + system time over the
 * round, from /proc): on two shared cores a round's rate varies by ±25 %, the CPU a request
 * costs far less, and where the service is the bottleneck one is the inverse of the other.
 */
import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:http'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../test/support/ports.js'
import { ROOT, ROUNDS, ROWS, SECONDS, benchDatabase, ensureWrk, load, median, sh, spread, start, startArgs, stopAll, type Run, QUOTA_ON } from './lib.js'

const wrk = await ensureWrk()
if (!process.argv.includes('--no-build')) await sh('npm', ['run', 'build'], { cwd: ROOT })
const database = await benchDatabase('bench-observability')
const scripts = await mkdtemp(join(tmpdir(), 'todos-api-bench-'))
const sink = createServer((request, response) => request.resume().on('end', () => response.writeHead(200).end()))
await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve))
const collector = `http://127.0.0.1:${(sink.address() as { port: number }).port}`
const servers: ChildProcess[] = []
try {
  const script = join(scripts, 'lookup.lua')
  await writeFile(script, `request = function() return wrk.format("GET", "/todos/" .. math.random(1, ${ROWS})) end\nwrk.headers["Authorization"] = "Bearer ${database.token}"`)
  const base = async (port: number) => ({ NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), DATABASE_URL: database.url, LOG_LEVEL: 'info', METRICS_PORT: String(await freePort()), ...QUOTA_ON })
  const tracing = (ratio: string) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: collector, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: ratio, OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none' })
  const variants = {
    'metrics off': {},
    'metrics on (the default)': {},
    'metrics + tracing 10 %': tracing('0.1'),
    'metrics + tracing 100 %': tracing('1')
  } as Record<string, Record<string, string>>
  const args = await startArgs()
  const ports: Record<string, number> = {}
  for (const [name, env] of Object.entries(variants)) {
    const port = (ports[name] = await freePort())
    const settings = { ...(await base(port)), ...env, ...(name === 'metrics off' ? { METRICS_PORT: '0' } : {}) }
    servers.push(await start(name, args, settings, port))
    await load(wrk, script, port, 2)
  }
  const runs: Record<string, Run[]> = {}
  const cpu: Record<string, number[]> = {}
  const names = Object.keys(variants)
  // User + system seconds of a process, from /proc/<pid>/stat (fields 14 and 15, in ticks of 1/100 s).
  const cpuSeconds = async (child: ChildProcess) => {
    const stat = await readFile(`/proc/${child.pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse()
    for (const name of order) {
      const server = servers[names.indexOf(name)] as ChildProcess
      const before = await cpuSeconds(server)
      const run = await load(wrk, script, ports[name] as number, SECONDS)
      ;(runs[name] ??= []).push(run)
      ;(cpu[name] ??= []).push(((await cpuSeconds(server)) - before) * 1e6 / Math.max(1, run.rps * SECONDS))
    }
  }
  const off = runs['metrics off'] as Run[]
  const lines = [
    `GET /todos/:id with a token, wrk 32 connections, ${ROUNDS} rounds of ${SECONDS} s, alternating order; medians (lowest–highest); ratio against metrics off, round by round`,
    '',
    '| variant | req/s | ratio | CPU µs per request | CPU ratio | p99 ms | failed |',
    '| --- | --- | --- | --- | --- | --- | --- |'
  ]
  for (const name of names) {
    const own = runs[name] as Run[]
    const ratios = own.map((run, i) => run.rps / ((off[i] as Run).rps || 1))
    const perRequest = cpu[name] as number[]
    const cpuRatios = perRequest.map((value, i) => value / ((cpu['metrics off'] as number[])[i] || 1))
    lines.push(
      `| ${name} | ${median(own.map((r) => r.rps)).toFixed(0)} (${spread(own.map((r) => r.rps))}) | ${median(ratios).toFixed(3)}× (${spread(ratios, 3)}) | ${median(perRequest).toFixed(0)} (${spread(perRequest)}) | ${median(cpuRatios).toFixed(3)}× (${spread(cpuRatios, 3)}) | ${median(own.map((r) => r.p99)).toFixed(2)} | ${own.reduce((sum, run) => sum + run.failed, 0)} |`
    )
  }
  console.log(lines.join('\n'))
} finally {
  await stopAll(servers)
  sink.close()
  await rm(scripts, { recursive: true, force: true })
  await database.close()
}
