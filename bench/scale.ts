/**
 * `make bench` (second part), or `make bench-scale` alone: the scaled-out shapes side by
 * side on one embedded PostgreSQL holding 100 000 todos, GET /todos/:id with a bearer
 * token, at production settings (compiled, NODE_ENV=production, LOG_LEVEL=info):
 *
 * - one replica straight to PostgreSQL, with prepared statements (the default) and without;
 * - one replica through PgBouncer 1.18 (docker/pgbouncer/pgbouncer.ini, transaction mode,
 *   prepared statements off, as compose.scaled.yaml runs it);
 * - nginx (docker/nginx/nginx.conf) in front of one replica, and in front of two;
 * - WEB_CONCURRENCY=2: two workers of one process sharing the port.
 *
 * wrk, one thread, 32 connections; rounds alternate the order; medians (lowest–highest).
 * Everything shares the machine's cores: wrk, nginx, PgBouncer, PostgreSQL and the replicas.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { startNginx } from '../test/support/nginx.js'
import { ensurePrograms } from '../test/support/packages.js'
import { startPgBouncer } from '../test/support/pgbouncer.js'
import { freePort } from '../test/support/ports.js'
import { CONNECTIONS, ROOT, ROUNDS, ROWS, SECONDS, benchDatabase, ensureWrk, stopAll, load, median, sh, spread, start, startArgs, type Run, QUOTA_ON } from './lib.js'

const wrk = await ensureWrk()
const missing = await ensurePrograms((message) => console.error(message))
if (missing.nginx || missing.pgbouncer) throw new Error(Object.values(missing).join('; '))
if (process.argv.includes('--build')) {
  console.error('building dist/ (npm run build)')
  await sh('npm', ['run', 'build'], { cwd: ROOT })
}

const database = await benchDatabase('bench-scale-postgres')
const cleanups: Array<() => unknown> = []
/** startNginx and startPgBouncer clean up through a test's teardown; here, at the end. */
const scope = { teardown: (fn: () => unknown) => cleanups.push(fn) } as unknown as Test
const scripts = await mkdtemp(join(tmpdir(), 'todos-api-bench-'))
const servers: ChildProcess[] = []
try {
  const script = join(scripts, 'get.lua')
  await writeFile(script, `request = function() return wrk.format("GET", "/todos/" .. math.random(1, ${ROWS})) end\nwrk.headers["Authorization"] = "Bearer ${database.token}"`)
  const args = await startArgs()
  const bouncer = await startPgBouncer(scope, database.url)
  const env = async (port: number, extra: Record<string, string> = {}) => ({
    NODE_ENV: 'production',
    ...QUOTA_ON,
    HOST: '127.0.0.1',
    PORT: String(port),
    // As deployed, metrics on: each replica its own operators' port.
    METRICS_PORT: String(await freePort()),
    DATABASE_URL: database.url,
    LOG_LEVEL: 'info',
    ...extra
  })
  const ports = { direct: await freePort(), second: await freePort(), unprepared: await freePort(), pooled: await freePort(), workers: await freePort() }
  servers.push(
    await start('direct', args, await env(ports.direct), ports.direct),
    await start('second replica', args, await env(ports.second), ports.second),
    await start('unprepared', args, await env(ports.unprepared, { DATABASE_PREPARED_STATEMENTS: 'false' }), ports.unprepared),
    await start('pgbouncer', args, await env(ports.pooled, { DATABASE_URL: bouncer.through(database.url), MIGRATION_DATABASE_URL: database.url, DATABASE_PREPARED_STATEMENTS: 'false' }), ports.pooled),
    await start('WEB_CONCURRENCY=2', args, await env(ports.workers, { WEB_CONCURRENCY: '2' }), ports.workers)
  )
  // wrk is one client address: the bundled per-address limit (500/s) would answer it 429.
  // What is measured here is the proxy's own price, so the limit is lifted.
  const unlimited: Array<[RegExp, string]> = [[/^(\s*)limit_req zone=per_address burst=1000 nodelay;$/, '$1# no per-address limit for the benchmark']]
  const nginxOne = await startNginx(scope, [ports.direct], unlimited)
  const nginxTwo = await startNginx(scope, [ports.direct, ports.second], unlimited)

  const shapes = {
    'one replica, direct (prepared statements)': ports.direct,
    'one replica, direct, DATABASE_PREPARED_STATEMENTS=false': ports.unprepared,
    'one replica through PgBouncer (transaction mode, unprepared)': ports.pooled,
    'nginx → one replica': nginxOne.port,
    'nginx → two replicas': nginxTwo.port,
    'WEB_CONCURRENCY=2 (one process, two workers)': ports.workers
  }
  for (const port of Object.values(shapes)) await load(wrk, script, port, 2) // warm-up
  const results: Record<string, Run[]> = {}
  const names = Object.keys(shapes) as Array<keyof typeof shapes>
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse()
    for (const name of order) (results[name] ??= []).push(await load(wrk, script, shapes[name], SECONDS))
  }

  const base = results['one replica, direct (prepared statements)'] ?? []
  const lines = [
    `GET /todos/:id with a bearer token, ${ROWS} todos, ${cpus().length} cores shared by everything; wrk with ${CONNECTIONS} connections, ${ROUNDS} rounds of ${SECONDS} s, alternating order; medians (lowest–highest)`,
    '',
    '| shape | req/s | vs one replica direct | p99 ms | failed |',
    '| --- | --- | --- | --- | --- |'
  ]
  for (const name of names) {
    const runs = results[name] ?? []
    const ratios = runs.map((run, i) => run.rps / (base[i]?.rps ?? 1))
    lines.push(
      `| ${name} | ${median(runs.map((r) => r.rps)).toFixed(0)} (${spread(runs.map((r) => r.rps))}) | ${median(ratios).toFixed(2)}× (${spread(ratios, 2)}) | ` +
        `${median(runs.map((r) => r.p99)).toFixed(2)} | ${runs.reduce((sum, run) => sum + run.failed, 0)} |`
    )
  }
  console.log(lines.join('\n'))
} finally {
  await stopAll(servers)
  for (const cleanup of cleanups.reverse()) await cleanup()
  await rm(scripts, { recursive: true, force: true })
  await database.close()
}
