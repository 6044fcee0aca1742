/**
 * The price of observability (part of `make bench`): the same compiled service, at
 * production settings, with metrics off (METRICS_PORT=0), metrics on (the default), and
 * metrics on with OpenTelemetry tracing at 100 % and at 10 % sampling, exporting OTLP
 * (http/protobuf, the default) to a sink in this process that reads and drops every batch.
 * wrk, 32 connections, GET /todos/:id with a token; rounds alternate the order of the
 * servers; medians with the spread. Goal: metrics cost at most 3 % of the lookups' rate.
 */
import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
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
  const names = Object.keys(variants)
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse()
    for (const name of order) (runs[name] ??= []).push(await load(wrk, script, ports[name] as number, SECONDS))
  }
  const off = runs['metrics off'] as Run[]
  const lines = [
    `GET /todos/:id with a token, wrk 32 connections, ${ROUNDS} rounds of ${SECONDS} s, alternating order; medians (lowest–highest); ratio against metrics off, round by round`,
    '',
    '| variant | req/s | ratio | p99 ms | failed |',
    '| --- | --- | --- | --- | --- |'
  ]
  for (const name of names) {
    const own = runs[name] as Run[]
    const ratios = own.map((run, i) => run.rps / ((off[i] as Run).rps || 1))
    lines.push(`| ${name} | ${median(own.map((r) => r.rps)).toFixed(0)} (${spread(own.map((r) => r.rps))}) | ${median(ratios).toFixed(3)}× (${spread(ratios, 3)}) | ${median(own.map((r) => r.p99)).toFixed(2)} | ${own.reduce((sum, run) => sum + run.failed, 0)} |`)
  }
  console.log(lines.join('\n'))
} finally {
  await stopAll(servers)
  sink.close()
  await rm(scripts, { recursive: true, force: true })
  await database.close()
}
