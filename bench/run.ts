/**
 * `make bench`: load-tests the service against a bare node:http + pg baseline doing the
 * same queries, on a throwaway embedded PostgreSQL filled with the demo data. Each server
 * runs in its own process; autocannon runs here. Prints requests per second, latency
 * percentiles and the server's memory after the run. Short on purpose (2 cores).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { destroyEmbeddedPostgres, startEmbeddedPostgres } from '../src/dev/embedded.js'
import { runMigrations } from '../src/db/migrate.js'
import { SEED_TODOS, seedDatabase } from '../src/dev/seed.js'
import { freePort } from '../test/support/ports.js'

const DURATION_S = Number(process.env.BENCH_SECONDS ?? 5)
const CONNECTIONS = 10
const dataDir = fileURLToPath(new URL('../.data/bench-postgres', import.meta.url))

await destroyEmbeddedPostgres(dataDir)
const database = await startEmbeddedPostgres({ dataDir, port: await freePort(), user: 'bench', password: 'bench', database: 'bench', ephemeral: true })
await runMigrations(database.connectionString)
await seedDatabase(database.connectionString)

async function startServer(script: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(script, import.meta.url)), database.connectionString], {
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once('data', (chunk: Buffer) => resolve(Number(String(chunk).trim())))
    child.once('exit', () => reject(new Error(`${script} exited`)))
  })
  return { child, port }
}

const rssMiB = async (pid: number) => Math.round(Number((await readFile(`/proc/${pid}/status`, 'utf8')).match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) / 1024)

const scenarios: Array<{ name: string; path: () => string }> = [
  { name: 'GET /todos/:id', path: () => `/todos/${1 + Math.floor(Math.random() * SEED_TODOS)}` },
  { name: 'GET /todos?limit=20', path: () => '/todos?limit=20' },
  { name: 'GET /todos?limit=100', path: () => '/todos?limit=100' }
]

const rows: string[] = []
const results: Record<string, Record<string, number>> = {}
for (const [label, script] of [
  ['baseline (node:http + pg)', './baseline-server.ts'],
  ['todos-api (Fastify)', './app-server.ts']
] as const) {
  const { child, port } = await startServer(script)
  for (const scenario of scenarios) {
    // A short warm-up so JIT and pool connections are in place before measuring.
    await autocannon({ url: `http://127.0.0.1:${port}`, connections: CONNECTIONS, duration: 1, requests: [{ setupRequest: (r) => ({ ...r, path: scenario.path() }) }] })
    const result = await autocannon({
      url: `http://127.0.0.1:${port}`,
      connections: CONNECTIONS,
      duration: DURATION_S,
      requests: [{ setupRequest: (request) => ({ ...request, path: scenario.path() }) }]
    })
    const bad = result.non2xx + result.errors + result.timeouts
    ;(results[scenario.name] ??= {})[label] = result.requests.average
    rows.push(
      `| ${label} | ${scenario.name} | ${Math.round(result.requests.average)} | ${result.latency.p50} | ${result.latency.p99} | ${await rssMiB(child.pid ?? 0)} | ${bad} |`
    )
  }
  child.kill('SIGTERM')
}
await database.release()
await destroyEmbeddedPostgres(dataDir)

console.log(`\n${CONNECTIONS} connections, ${DURATION_S} s per scenario, ${SEED_TODOS} todos\n`)
console.log('| server | scenario | req/s | p50 ms | p99 ms | RSS MiB | errors |')
console.log('| --- | --- | --- | --- | --- | --- | --- |')
for (const row of rows) console.log(row)
console.log('')
for (const [scenario, byServer] of Object.entries(results)) {
  const [base, app] = [byServer['baseline (node:http + pg)'] ?? 0, byServer['todos-api (Fastify)'] ?? 0]
  console.log(`${scenario}: todos-api does ${Math.round((app / base) * 100)}% of the baseline's throughput`)
}
