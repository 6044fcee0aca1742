/** What both benchmarks share: wrk, starting servers, the bench database, and the statistics. */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { newToken } from '../src/accounts/tokens.js'
import { withClient } from '../src/db/client.js'
import { runMigrations } from '../src/db/migrate.js'
import { destroyEmbeddedPostgres, startEmbeddedPostgres } from '../src/dev/embedded.js'
import { freePort } from '../test/support/ports.js'

export const sh = promisify(execFile)
export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4)
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
export const CONNECTIONS = 32
export const ROWS = 100_000
/**
 * Quotas on, counted as in production, but out of reach: wrk sends every request with one
 * token, at thousands a second, which the default (60 000 a minute) would refuse.
 */
export const QUOTA_ON = { RATE_LIMIT_PER_MINUTE: '100000000' }

export interface Run {
  rps: number
  p99: number
  failed: number
}

export async function ensureWrk(): Promise<string> {
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

/** Seconds → ms from wrk's latency text (`812.00us`, `2.31ms`, `1.02s`). */
const toMs = (text: string) => {
  const [, value = '0', unit = 'ms'] = /([\d.]+)(us|ms|s)/.exec(text) ?? []
  return Number(value) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1)
}

export async function load(wrk: string, script: string, port: number, seconds: number, connections = CONNECTIONS): Promise<Run> {
  const { stdout } = await sh(wrk, ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, `http://127.0.0.1:${port}`])
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0)
  const p99 = toMs(/\s99%\s+(\S+)/.exec(stdout)?.[1] ?? '0ms')
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)
  const errors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0
  return { rps, p99, failed: non2xx + errors }
}

export async function start(name: string, args: string[], env: Record<string, string>, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`)
    const ok = await fetch(`http://127.0.0.1:${port}${name === 'floor' ? '/todos/1' : '/health/ready'}`).then((r) => r.ok, () => false)
    if (ok) return child
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  child.kill('SIGKILL')
  throw new Error(`${name} did not come up`)
}

export const rssMiB = async (pid: number) => Math.round(Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024)
export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}
export const spread = (values: number[], digits = 0) => `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`


/** `npm start`'s command without npm: what the image runs. */
export async function startArgs(): Promise<string[]> {
  return (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start.split(' ').slice(1)
}

/**
 * A throwaway embedded PostgreSQL in `.data/<name>`, migrated, holding ROWS todos of the
 * local user, who also has a token. `close()` stops and removes it; `postmasterPid()` is
 * its server's process, for bench/cpu-groups.ts.
 */
export async function benchDatabase(name: string): Promise<{ url: string; token: string; postmasterPid(): Promise<number>; close(): Promise<void> }> {
  const dataDir = join(ROOT, '.data', name)
  await destroyEmbeddedPostgres(dataDir)
  const database = await startEmbeddedPostgres({ dataDir, port: await freePort(), user: 'bench', password: 'bench', database: 'bench', ephemeral: true })
  await runMigrations(database.connectionString)
  console.error(`loading ${ROWS} todos`)
  const token = newToken()
  await withClient(database.connectionString, async (client) => {
    await client.query(
      `INSERT INTO todos (owner_id, title, description, completed, "order", due_date, labels, priority, metadata)
       SELECT (SELECT id FROM users WHERE builtin), 'Task ' || i || ': ' || md5(i::text), CASE WHEN i % 3 = 0 THEN 'notes for ' || i END, i % 4 = 0,
              CASE WHEN i % 10 = 0 THEN NULL ELSE i END, CASE WHEN i % 5 = 0 THEN NULL ELSE now() + (i % 365) * interval '1 day' END,
              CASE WHEN i % 5 < 2 THEN ARRAY['work', 'label ' || (i % 30)] WHEN i % 5 = 2 THEN ARRAY['home'] ELSE '{}' END, 1 + i % 4,
              CASE WHEN i % 7 = 0 THEN jsonb_build_object('source', 'bench', 'n', i, 'tags', jsonb_build_array(i % 3, i % 5)) ELSE '{}' END
       FROM generate_series(1, ${ROWS}) i`
    )
    await client.query(`INSERT INTO api_tokens (user_id, name, token_hash, prefix) SELECT id, 'bench', $1, $2 FROM users WHERE builtin`, [token.hash, token.display])
    await client.query('VACUUM ANALYZE')
  })
  return {
    url: database.connectionString,
    token: token.secret,
    // The parent of a backend of ours: not postmaster.pid, a file the postgres user writes.
    postmasterPid: () =>
      withClient(database.connectionString, async (client) => {
        const backend = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid
        return Number(/^PPid:\s+(\d+)/m.exec(await readFile(`/proc/${backend}/status`, 'utf8'))?.[1])
      }),
    close: async () => {
      await database.release()
      await destroyEmbeddedPostgres(dataDir)
    }
  }
}

/** SIGTERM to every server, and their exits awaited (before the database they use goes). */
export async function stopAll(servers: ChildProcess[]): Promise<void> {
  await Promise.all(
    servers.map((server) => {
      if (server.exitCode !== null || server.signalCode !== null) return undefined
      const exited = new Promise((resolve) => server.once('exit', resolve))
      server.kill('SIGTERM')
      return exited
    })
  )
}
