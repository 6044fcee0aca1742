import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, openSync } from 'node:fs'
import { chmod, chown, copyFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { withClient } from '../db/client.js'
import { clusterDir, postgresUser, prepareClusterDir, removeClusterDir, type RunAs } from './embedded-host.js'

/** What the stack runs, from Debian's packages (Debian 12: Patroni 3.0, etcd 3.4, HAProxy 2.6, PostgreSQL 15). */
export const HA_PROGRAMS = {
  etcd: { path: '/usr/bin/etcd', pkg: 'etcd-server' },
  patroni: { path: '/usr/bin/patroni', pkg: 'patroni' },
  haproxy: { path: '/usr/sbin/haproxy', pkg: 'haproxy' },
  postgres15: { path: '/usr/lib/postgresql/15/bin/postgres', pkg: 'postgresql-15' }
} as const

export interface HaPorts {
  etcd: number
  etcdPeer: number
  /** HAProxy's way to the primary: the service's DATABASE_URL. */
  primary: number
  stats: number
  nodes: { pg: number; rest: number }[]
}

export const DEFAULT_HA_PORTS: HaPorts = { etcd: 2379, etcdPeer: 2380, primary: 5000, stats: 7000, nodes: [ { pg: 5441, rest: 8008 }, { pg: 5442, rest: 8009 } ] }

export interface HaNode {
  name: string
  pgPort: number
  restPort: number
  dataDir: string
}

export interface HaStack {
  /** The `todos` database through HAProxy, as the superuser. */
  url: string
  /** The same database on one node, bypassing HAProxy. */
  nodeUrl(node: HaNode): string
  nodes: HaNode[]
  dir: string
  /** The node whose Patroni answers /primary, if any. */
  leader(): Promise<HaNode | undefined>
  /** Waits until a node is the synchronous standby (a failover may only promote that one). */
  waitForSyncStandby(timeoutMs?: number): Promise<HaNode>
  /** SIGKILL to the leader's postmaster: the machine's database dies with no goodbye. */
  killLeader(): Promise<HaNode>
  /** Kills every process of the stack; `remove` deletes its data too. */
  stop(options?: { remove?: boolean }): Promise<void>
}

const DOCKER = new URL('../../docker/', import.meta.url).pathname
const DATABASE = 'todos'

/**
 * etcd, two PostgreSQL 15 nodes under Patroni and HAProxy on loopback, without containers:
 * the database side of compose.ha.yaml, run with the same docker/patroni/patroni.yml and
 * docker/haproxy/haproxy.cfg (each node's own settings come from the environment, as there).
 * A throwaway cluster: `stop()` kills every process (a graceful stop of a synchronous pair
 * waits for the standby), and the next start initialises a new one.
 */
export async function startHaStack(options: { dir: string; ports?: HaPorts; log?: (line: string) => void }): Promise<HaStack> {
  const missing = Object.values(HA_PROGRAMS).filter((program) => !existsSync(program.path))
  if (missing.length > 0) throw new Error(`missing ${missing.map((program) => program.path).join(', ')}: apt-get install ${missing.map((program) => program.pkg).join(' ')}`)
  const ports = options.ports ?? DEFAULT_HA_PORTS
  const log = options.log ?? (() => {})
  const runAs = await postgresUser({ create: true })
  // As root, the postgres user may not reach the project (a mode-0700 clone): the stack
  // then lives under /var/lib/todos-api (embedded-host.ts).
  await removeClusterDir(options.dir)
  const dir = await clusterDir(options.dir, log)
  await prepareClusterDir(dir, runAs)
  const own = (path: string) => (runAs.uid === undefined || runAs.gid === undefined ? Promise.resolve() : chown(path, runAs.uid, runAs.gid))
  // Copies the postgres user can read (it may not reach the project).
  for (const file of ['patroni/patroni.yml', 'patroni/post-bootstrap.sh', 'haproxy/haproxy.cfg']) {
    const copy = join(dir, file.split('/')[1] as string)
    await copyFile(join(DOCKER, file), copy)
    await chmod(copy, file.endsWith('.sh') ? 0o755 : 0o644)
    await own(copy)
  }
  const passwords = { superuser: randomBytes(18).toString('base64url'), replication: randomBytes(18).toString('base64url') }
  const nodes: HaNode[] = ports.nodes.map((node, index) => ({ name: `pg${index + 1}`, pgPort: node.pg, restPort: node.rest, dataDir: join(dir, `pg${index + 1}`) }))
  const children: ChildProcess[] = []
  const start = (name: string, file: string, args: string[], env: Record<string, string>, as: RunAs = {}) => {
    const output = openSync(join(dir, `${name}.log`), 'a', 0o600)
    // A process group of its own: a terminal's Ctrl-C reaches `make ha`, which stops the
    // service first and the stack after it, not every process at once.
    const child = spawn(file, args, { ...as, cwd: dir, detached: true, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C.UTF-8', ...env }, stdio: ['ignore', output, output] })
    closeSync(output)
    child.on('error', (error) => log(`${name}: ${error.message}`))
    children.push(child)
    return child
  }

  const stack: HaStack = {
    url: `postgres://postgres:${passwords.superuser}@127.0.0.1:${ports.primary}/${DATABASE}`,
    nodeUrl: (node) => `postgres://postgres:${passwords.superuser}@127.0.0.1:${node.pgPort}/${DATABASE}`,
    nodes,
    dir,
    leader: () => leaderOf(nodes),
    async waitForSyncStandby(timeoutMs = 30_000) {
      return waitFor('a synchronous standby', timeoutMs, async () => {
        const answers = await Promise.all(nodes.map((node) => restStatus(node, '/sync')))
        return nodes[answers.indexOf(200)]
      })
    },
    async killLeader() {
      const leader = await leaderOf(nodes)
      if (leader === undefined) throw new Error('no node is the leader')
      await killPostmaster(leader)
      return leader
    },
    async stop({ remove = false } = {}) {
      for (const child of children) child.kill('SIGKILL')
      // Patroni detaches its postmaster: stopping Patroni leaves PostgreSQL running.
      for (const node of nodes) {
        const pid = await postmasterPid(node).catch(() => undefined)
        if (pid !== undefined) killQuietly(pid)
      }
      await Promise.all(children.map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined)))
      if (remove) await removeClusterDir(options.dir)
    }
  }

  try {
    start('etcd', HA_PROGRAMS.etcd.path, [
      '--name=etcd',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${ports.etcd}`,
      `--advertise-client-urls=http://127.0.0.1:${ports.etcd}`,
      `--listen-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-cluster=etcd=http://127.0.0.1:${ports.etcdPeer}`,
      '--logger=zap',
      '--log-level=warn'
    ], {})
    await waitFor('etcd', 20_000, async () => ((await httpStatus(`http://127.0.0.1:${ports.etcd}/health`)) === 200 ? true : undefined))
    for (const node of nodes) {
      start(node.name, HA_PROGRAMS.patroni.path, [join(dir, 'patroni.yml')], {
        HOME: dir,
        PATRONI_NAME: node.name,
        PATRONI_RESTAPI_LISTEN: `127.0.0.1:${node.restPort}`,
        PATRONI_RESTAPI_CONNECT_ADDRESS: `127.0.0.1:${node.restPort}`,
        PATRONI_POSTGRESQL_LISTEN: `127.0.0.1:${node.pgPort}`,
        PATRONI_POSTGRESQL_CONNECT_ADDRESS: `127.0.0.1:${node.pgPort}`,
        PATRONI_POSTGRESQL_DATA_DIR: node.dataDir,
        PATRONI_POSTGRESQL_PGPASS: join(dir, `${node.name}.pgpass`),
        PATRONI_ETCD3_HOSTS: `127.0.0.1:${ports.etcd}`,
        PATRONI_SUPERUSER_PASSWORD: passwords.superuser,
        POSTGRES_DB: DATABASE,
        PATRONI_REPLICATION_PASSWORD: passwords.replication
      }, runAs)
    }
    const [first, second] = nodes as [HaNode, HaNode]
    start('haproxy', HA_PROGRAMS.haproxy.path, ['-db', '-f', join(dir, 'haproxy.cfg')], {
      HA_BIND: `127.0.0.1:${ports.primary}`,
      HA_STATS_BIND: `127.0.0.1:${ports.stats}`,
      HA_PG1: `127.0.0.1:${first.pgPort}`,
      HA_PG1_REST_PORT: String(first.restPort),
      HA_PG2: `127.0.0.1:${second.pgPort}`,
      HA_PG2_REST_PORT: String(second.restPort)
    })
    const leader = await waitFor('a leader', 60_000, () => stack.leader())
    log(`${leader.name} leads`)
    // Through HAProxy, to the database post-bootstrap.sh made: HAProxy takes servers for up
    // until their first check, so the first connections may still reach the standby.
    await waitFor('the primary through HAProxy', 20_000, () =>
      withClient(stack.url, async (client) => ((await client.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby')).rows[0]?.standby === false ? true : undefined)).catch(
        () => undefined
      )
    )
    return stack
  } catch (error) {
    await stack.stop()
    const logs = await Promise.all(['etcd', ...nodes.map((node) => node.name), 'haproxy'].map(async (name) => `--- ${name}.log\n${(await readFile(join(dir, `${name}.log`), 'utf8').catch(() => '')).slice(-2000)}`))
    throw new Error(`${(error as Error).message}\n${logs.join('\n')}`)
  }
}

/** The node whose Patroni answers /primary with 200, if any. */
export async function leaderOf(nodes: HaNode[]): Promise<HaNode | undefined> {
  const answers = await Promise.all(nodes.map((node) => restStatus(node, '/primary')))
  return nodes[answers.indexOf(200)]
}

/** SIGKILL to a node's postmaster: its database dies with no goodbye, as with its machine. */
export async function killPostmaster(node: HaNode): Promise<void> {
  process.kill(await postmasterPid(node), 'SIGKILL')
}

async function postmasterPid(node: HaNode): Promise<number> {
  const pid = Number((await readFile(join(node.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${node.name}: no postmaster pid`)
  return pid
}

function killQuietly(pid: number) {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

const httpStatus = (url: string) =>
  fetch(url, { signal: AbortSignal.timeout(1000) }).then(
    async (answer) => {
      await answer.arrayBuffer()
      return answer.status
    },
    () => 0
  )

/** What Patroni's REST API answers for a role check: 200 when the node is in that role. */
const restStatus = (node: HaNode, path: string) => httpStatus(`http://127.0.0.1:${node.restPort}${path}`)

async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const found = await check()
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs / 1000} s`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
