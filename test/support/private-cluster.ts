import { execFile } from 'node:child_process'
import { mkdtemp, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Test } from 'tap'
import { destroyEmbeddedPostgres, startEmbeddedPostgres, stopEmbeddedPostgres, type EmbeddedPostgres } from '../../src/dev/embedded.js'
import { clusterDir, postgresUser, prepareClusterDir } from '../../src/dev/embedded-host.js'
import { readClusterState } from '../setup/cluster.js'
import { freePort } from './ports.js'

const run = promisify(execFile)
const DATA_ROOT = new URL('../../.data/', import.meta.url).pathname

/**
 * A PostgreSQL server of one test's own, for the tests that stop, restart or freeze the
 * database for real (the shared server must stay up for the other test files).
 */
export class PrivateCluster {
  private server: EmbeddedPostgres | undefined

  private constructor(
    readonly dataDir: string,
    readonly port: number
  ) {}

  static async create(t: Test): Promise<PrivateCluster> {
    const cluster = new PrivateCluster(await mkdtemp(join(DATA_ROOT, 'private-')), await freePort())
    t.teardown(async () => {
      // Whatever the test left half done (a start still under way, a frozen server), the
      // server must be gone before its directory is.
      await cluster.starting?.catch(() => {})
      await cluster.resume().catch(() => {})
      await destroyEmbeddedPostgres(cluster.dataDir)
    })
    // A copy of the cluster the setup made once (initdb is most of a cluster's start).
    const template = readClusterState().clusterTemplate
    if (template) {
      const target = await clusterDir(cluster.dataDir)
      await prepareClusterDir(target, await postgresUser())
      await run('cp', ['-a', `${template}/.`, target])
    }
    await cluster.start()
    return cluster
  }

  /** postgres://postgres:postgres@127.0.0.1:<port>/app */
  get connectionString(): string {
    return `postgres://postgres:postgres@127.0.0.1:${this.port}/app`
  }

  private starting: Promise<unknown> | undefined

  async start(): Promise<void> {
    const starting = startEmbeddedPostgres({
      dataDir: this.dataDir,
      port: this.port,
      user: 'postgres',
      password: 'postgres',
      database: 'app',
      ephemeral: true
    })
    this.starting = starting
    this.server = await starting
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (this.server === undefined) return
    this.server = undefined
    await stopEmbeddedPostgres(this.dataDir, mode)
  }

  /** Freezes every server process (SIGSTOP): connections open but nothing ever answers. */
  async pause(): Promise<void> {
    await this.signalAll('STOP')
  }

  async resume(): Promise<void> {
    await this.signalAll('CONT')
  }

  private async signalAll(signal: 'STOP' | 'CONT') {
    const postmaster = (await readFile(join(await clusterDir(this.dataDir), 'postmaster.pid'), 'utf8')).split('\n')[0] ?? ''
    const children = await run('pgrep', ['-P', postmaster]).then(({ stdout }) => stdout.split('\n').filter(Boolean), () => [])
    await run('kill', [`-${signal}`, postmaster, ...children])
  }
}
