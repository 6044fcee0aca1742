import { spawn } from 'node:child_process'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { childProcessEnv } from '../config.js'
import { ensureDebianPrograms } from './debian-packages.js'
import { killPostmaster, leaderOf, type HaNode } from './ha-nodes.js'
import { DEFAULT_HA_PORTS, HA_PROGRAMS, createHaStack } from './ha-stack.js'

/**
 * `make ha`: the database side of compose.ha.yaml on this machine, without containers
 * (etcd, two PostgreSQL nodes under Patroni, HAProxy; Debian's packages, installed when
 * missing), and `make dev`'s service on top of it, through HAProxy. Ctrl-C stops it all
 * and throws the cluster away. `make ha-failover`, from another terminal, kills the
 * leader's postmaster and reports how long the way through HAProxy took to come back.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const DIR = `${ROOT}.data/ha`
/** What `make ha-failover` needs of the running stack (private: the URL has the password). */
const STATE = `${ROOT}.data/ha.json`
const log = (line: string) => console.log(`make ha: ${line}`)

interface State {
  url: string
  nodes: HaNode[]
}

async function up() {
  const missing = Object.values(await ensureDebianPrograms(HA_PROGRAMS, log))
  if (missing.length > 0) throw new Error(missing.join('; '))
  const stack = createHaStack({ dir: DIR, log })
  const stop = async () => {
    await stack.stop({ remove: true })
    await rm(STATE, { force: true })
  }
  // Arranged before anything starts: a Ctrl-C (or a closed terminal) halfway leaves nothing running.
  let starting = true
  const interrupted = () => {
    if (!starting) return
    log('interrupted: stopping what started')
    void stop().finally(() => process.exit(130))
  }
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, interrupted)
  log('starting etcd, two PostgreSQL 15 nodes under Patroni and HAProxy')
  try {
    await stack.start()
    const standby = await stack.waitForSyncStandby()
    await mkdir(dirname(STATE), { recursive: true })
    await writeFile(STATE, JSON.stringify({ url: stack.url, nodes: stack.nodes } satisfies State), { mode: 0o600 })
    const leader = await stack.leader()
    const { primary, stats, nodes } = DEFAULT_HA_PORTS
    log(`${leader?.name ?? '?'} is the primary, ${standby.name} its synchronous standby`)
    log(`HAProxy to the primary: 127.0.0.1:${primary} (the service's DATABASE_URL); its stats: http://127.0.0.1:${stats}/`)
    log(`Patroni: ${nodes.map((node) => `http://127.0.0.1:${node.rest}/cluster`).join(', ')}`)
    log('try a failover from another terminal: make ha-failover')
  } catch (error) {
    await stop()
    throw error
  }
  starting = false
  // The service as `make dev` runs it, in a process group of its own: a terminal's Ctrl-C
  // reaches this process, which passes it on once (two would force the service out); the
  // service drains, then the stack goes.
  const dev = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./run.ts', import.meta.url))], {
    stdio: 'inherit',
    detached: true,
    env: childProcessEnv({ DATABASE_URL: stack.url })
  })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => dev.kill(signal))
  const code = await new Promise<number>((resolve) => dev.on('exit', (exitCode) => resolve(exitCode ?? 1)))
  log('stopping the cluster (thrown away)')
  await stop()
  process.exitCode = code
}

async function failover() {
  const state = JSON.parse(await readFile(STATE, 'utf8').catch(() => 'null')) as State | null
  if (state === null) throw new Error('no stack is running: start one with make ha')
  const leader = await leaderOf(state.nodes)
  if (leader === undefined) throw new Error('no node is the primary right now (a failover under way?)')
  await killPostmaster(leader)
  const killedAt = Date.now()
  log(`killed ${leader.name}'s postmaster (SIGKILL)`)
  for (;;) {
    const client = new pg.Client({ connectionString: state.url, connectionTimeoutMillis: 1000 })
    client.on('error', () => {})
    const written = await client
      .connect()
      .then(() => client.query("SELECT pg_is_in_recovery() AS standby, txid_current() IS NOT NULL AS wrote"))
      .then(({ rows }) => rows[0]?.standby === false)
      .catch(() => false)
      .finally(() => client.end().catch(() => {}))
    if (written) break
    if (Date.now() - killedAt > 60_000) throw new Error('no primary through HAProxy within 60 s')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  log(`${(await leaderOf(state.nodes))?.name ?? '?'} is the primary; a write through HAProxy worked ${Date.now() - killedAt} ms after the kill`)
}

try {
  if (process.argv[2] === 'failover') await failover()
  else await up()
} catch (error) {
  console.error(`make ha: ${(error as Error).message}`)
  process.exitCode = 1
}
