import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { closeSync, existsSync, openSync } from 'node:fs'
import { chmod, chown, copyFile, mkdir, readFile, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { withClient } from '../db/client.js'
import { clusterDir, postgresUser, run, stateRoot, type RunAs } from './embedded-host.js'
import { httpStatus, killPostmaster, killQuietly, leaderOf, portFree, restStatus, waitFor, type HaNode } from './ha-nodes.js'

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

/** etcd off its usual 2379, which the Debian package's own service takes where systemd runs. */
export const DEFAULT_HA_PORTS: HaPorts = { etcd: 23_790, etcdPeer: 23_800, primary: 5000, stats: 7000, nodes: [ { pg: 5441, rest: 8008 }, { pg: 5442, rest: 8009 } ] }


const DOCKER = new URL('../../docker/', import.meta.url).pathname
const DATABASE = 'todos'
const PATH = '/usr/sbin:/usr/bin:/sbin:/bin'

/**
 * etcd, two PostgreSQL 15 nodes under Patroni and HAProxy on loopback, without containers:
 * the database side of compose.ha.yaml, run with the same docker/patroni/patroni.yml and
 * docker/haproxy/haproxy.cfg (each node's own settings come from the environment, as there).
 * A throwaway cluster: `stop()` kills every process (a graceful stop of a synchronous pair
 * waits for the standby), and the next start initialises a new one. Create it, arrange
 * for `stop()` (a signal, a teardown), then `start()`: a start cut short leaves nothing.
 *
 * As root, every process runs as the postgres user. The configuration, logs and etcd's
 * credentials stay in root's directory; each node gets a directory of its own, which root
 * only reads the postmaster's pid from, and signals that pid as the postgres user.
 */
export function createHaStack(options: { dir: string; ports?: HaPorts; log?: (line: string) => void }) {
  const ports = options.ports ?? DEFAULT_HA_PORTS
  const log = options.log ?? (() => {})
  const secret = () => randomBytes(18).toString('base64url')
  const passwords = { superuser: secret(), replication: secret(), rest: secret(), etcd: secret() }
  const children: ChildProcess[] = []
  let base = options.dir
  let runAs: RunAs = {}
  const nodes: HaNode[] = ports.nodes.map((node, index) => ({ name: `pg${index + 1}`, pgPort: node.pg, restPort: node.rest, dataDir: '' }))

  let stopped = false
  const start = (name: string, file: string, args: string[], env: Record<string, string>) => {
    // A stop() while start() still runs (a Ctrl-C): nothing more is started.
    if (stopped) throw new Error('the stack was stopped while starting')
    const output = openSync(join(base, 'logs', `${name}.log`), 'wx', 0o600)
    // A process group of its own: a terminal's Ctrl-C reaches `make ha`, which stops the
    // service first and the stack after it; stop() kills the whole group.
    const child = spawn(file, args, { ...runAs, cwd: join(base, 'etc'), detached: true, env: { PATH, LC_ALL: 'C.UTF-8', ...env }, stdio: ['ignore', output, output] })
    closeSync(output)
    child.on('error', (error) => log(`${name}: ${error.message}`))
    children.push(child)
    return child
  }
  /** A directory only the postgres user (or, not as root, this user) can enter. */
  const own = async (path: string) => {
    await mkdir(path, { mode: 0o700 })
    if (runAs.uid !== undefined && runAs.gid !== undefined) await chown(path, runAs.uid, runAs.gid)
  }
  const etcd = (path: string, body: object) => fetch(`http://127.0.0.1:${ports.etcd}/v3/${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(2000) })

  const stack = {
    /** The `todos` database through HAProxy, as the superuser. */
    url: `postgres://postgres:${passwords.superuser}@127.0.0.1:${ports.primary}/${DATABASE}`,
    /** The same database on one node, bypassing HAProxy. */
    nodeUrl: (node: HaNode) => `postgres://postgres:${passwords.superuser}@127.0.0.1:${node.pgPort}/${DATABASE}`,
    nodes,
    /** The node whose Patroni answers /primary, if any. */
    leader: () => leaderOf(nodes),
    /** Waits until a node is the synchronous standby (a failover may only promote that one). */
    waitForSyncStandby: (timeoutMs = 30_000) =>
      waitFor('a synchronous standby', timeoutMs, async () => nodes[(await Promise.all(nodes.map((node) => restStatus(node, '/sync')))).indexOf(200)]),
    /** SIGKILL to the leader's postmaster: the database dies with no goodbye, as with its machine. */
    async killLeader(): Promise<HaNode> {
      const leader = await waitFor('a leader', 10_000, () => leaderOf(nodes))
      await killPostmaster(leader)
      return leader
    },

    async start(): Promise<void> {
      const missing = Object.values(HA_PROGRAMS).filter((program) => !existsSync(program.path))
      if (missing.length > 0) throw new Error(`missing ${missing.map((program) => program.path).join(', ')}: apt-get install ${missing.map((program) => program.pkg).join(' ')}`)
      for (const port of [ports.etcd, ports.etcdPeer, ports.primary, ports.stats, ...ports.nodes.flatMap((node) => [node.pg, node.rest])]) {
        if (!(await portFree(port))) throw new Error(`127.0.0.1:${port} is taken (another make ha, or a system etcd, HAProxy or PostgreSQL?)`)
      }
      runAs = await postgresUser({ create: true })
      // As root, where the postgres user cannot reach the project (a mode-0700 clone), the
      // stack lives under /var/lib/todos-api, in a directory of root's.
      if (runAs.uid !== undefined && (await clusterDir(options.dir)) !== options.dir) {
        base = join(await stateRoot(), `${basename(options.dir)}-${createHash('sha256').update(options.dir).digest('hex').slice(0, 12)}`)
        log(`the postgres user cannot reach ${options.dir}; the stack lives in ${base}`)
      }
      await rm(base, { recursive: true, force: true })
      // Searchable by the postgres user all the way down, whatever the umask; writable by this user alone.
      const above = await mkdir(dirname(base), { recursive: true })
      if (above !== undefined) for (let dir = dirname(base); dir.startsWith(above); dir = dirname(dir)) await chmod(dir, 0o755)
      for (const dir of [base, join(base, 'etc')]) {
        await mkdir(dir)
        await chmod(dir, 0o755)
      }
      await mkdir(join(base, 'logs'), { mode: 0o700 })
      for (const file of ['patroni/patroni.yml', 'patroni/post-bootstrap.sh', 'haproxy/haproxy.cfg']) {
        const copy = join(base, 'etc', file.split('/')[1] as string)
        await copyFile(join(DOCKER, file), copy)
        await chmod(copy, file.endsWith('.sh') ? 0o755 : 0o644)
      }
      await own(join(base, 'etcd'))
      for (const node of nodes) {
        node.dataDir = join(base, node.name, 'data')
        await own(join(base, node.name))
      }

      start('etcd', HA_PROGRAMS.etcd.path, [
        '--name=etcd',
        `--data-dir=${join(base, 'etcd', 'data')}`,
        `--listen-client-urls=http://127.0.0.1:${ports.etcd}`,
        `--advertise-client-urls=http://127.0.0.1:${ports.etcd}`,
        `--listen-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
        `--initial-cluster=etcd=http://127.0.0.1:${ports.etcdPeer}`,
        '--logger=zap',
        '--log-level=warn'
      ], {})
      await waitFor('etcd', 20_000, async () => ((await httpStatus(`http://127.0.0.1:${ports.etcd}/health`)) === 200 ? true : undefined))
      // Only Patroni may change the cluster's state in etcd: any local user could otherwise
      // rewrite its configuration (an archive_command, say) and run code as postgres.
      for (const [path, body] of [['auth/role/add', { name: 'root' }], ['auth/user/add', { name: 'root', password: passwords.etcd }], ['auth/user/grant', { user: 'root', role: 'root' }], ['auth/enable', {}]] as const) {
        const answer = await etcd(path, body)
        if (!answer.ok) throw new Error(`etcd ${path}: ${answer.status} ${await answer.text()}`)
      }
      for (const node of nodes) {
        const home = join(base, node.name)
        start(node.name, HA_PROGRAMS.patroni.path, [join(base, 'etc', 'patroni.yml')], {
          HOME: home,
          TMPDIR: home,
          PATRONI_NAME: node.name,
          PATRONI_RESTAPI_LISTEN: `127.0.0.1:${node.restPort}`,
          PATRONI_RESTAPI_CONNECT_ADDRESS: `127.0.0.1:${node.restPort}`,
          // Changes through the REST API (configuration, restart, switchover) need these; checks do not.
          PATRONI_RESTAPI_USERNAME: 'patroni',
          PATRONI_RESTAPI_PASSWORD: passwords.rest,
          PATRONI_POSTGRESQL_LISTEN: `127.0.0.1:${node.pgPort}`,
          PATRONI_POSTGRESQL_CONNECT_ADDRESS: `127.0.0.1:${node.pgPort}`,
          PATRONI_POSTGRESQL_DATA_DIR: node.dataDir,
          PATRONI_POSTGRESQL_PGPASS: join(home, 'pgpass'),
          PATRONI_ETCD3_HOSTS: `127.0.0.1:${ports.etcd}`,
          PATRONI_ETCD3_USERNAME: 'root',
          PATRONI_ETCD3_PASSWORD: passwords.etcd,
          PATRONI_SUPERUSER_PASSWORD: passwords.superuser,
          PATRONI_REPLICATION_PASSWORD: passwords.replication,
          POSTGRES_DB: DATABASE
        })
      }
      const [first, second] = nodes as [HaNode, HaNode]
      start('haproxy', HA_PROGRAMS.haproxy.path, ['-db', '-f', join(base, 'etc', 'haproxy.cfg')], {
        HA_BIND: `127.0.0.1:${ports.primary}`,
        HA_STATS_BIND: `127.0.0.1:${ports.stats}`,
        HA_PG1: `127.0.0.1:${first.pgPort}`,
        HA_PG1_REST_PORT: String(first.restPort),
        HA_PG2: `127.0.0.1:${second.pgPort}`,
        HA_PG2_REST_PORT: String(second.restPort)
      })
      try {
        const leader = await waitFor('a leader', 60_000, () => leaderOf(nodes))
        log(`${leader.name} leads`)
        // Through HAProxy, to the database post-bootstrap.sh made: HAProxy takes servers for
        // up until their first check, so the first connections may still reach the standby.
        await waitFor('the primary through HAProxy', 20_000, () =>
          withClient(stack.url, async (client) => ((await client.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby')).rows[0]?.standby === false ? true : undefined)).catch(
            () => undefined
          )
        )
      } catch (error) {
        const names = ['etcd', ...nodes.map((node) => node.name), 'haproxy']
        const logs = await Promise.all(names.map(async (name) => `--- ${name}.log\n${(await readFile(join(base, 'logs', `${name}.log`), 'utf8').catch(() => '')).slice(-2000)}`))
        throw new Error(`${(error as Error).message}\n${logs.join('\n')}`)
      }
    },

    /** Kills every process of the stack (each process group); `remove` deletes its files too. */
    async stop({ remove = false } = {}): Promise<void> {
      stopped = true
      const exited = children.map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined))
      for (const child of children) if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) killQuietly(-child.pid)
      await Promise.all(exited)
      // Patroni starts its postmaster in a session of its own, so stopping Patroni leaves it
      // running, and one may still be starting: every process that names the stack's
      // directory, as the postgres user, until none is left.
      for (let round = 0; round < 50 && (await run('/usr/bin/pkill', ['-KILL', '-f', `${base}/`], runAs).then(() => true, () => false)); round++) {
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      if (remove) await rm(base, { recursive: true, force: true })
    }
  }
  return stack
}

export type HaStack = ReturnType<typeof createHaStack>
export type { HaNode }
