import { spawn } from 'node:child_process'
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { postgresUser } from '../../src/dev/embedded-host.js'
import { replaceLines } from './config-files.js'
import { watchOutput } from './output.js'
import { PROGRAMS } from './packages.js'
import { freePort } from './ports.js'

const DOCKER = fileURLToPath(new URL('../../docker/', import.meta.url))
export const PGBOUNCER_INI = join(DOCKER, 'pgbouncer/pgbouncer.ini')
const ENTRYPOINT = join(DOCKER, 'pgbouncer/entrypoint.sh')
const chownTo = (path: string, runAs: { uid?: number; gid?: number }) => (runAs.uid === undefined ? undefined : chown(path, runAs.uid, runAs.gid ?? runAs.uid))

export interface PgBouncer {
  port: number
  /** `databaseUrl` with its host and port replaced by the pooler's. */
  through(databaseUrl: string): string
  output: string[]
}

/**
 * Debian's PgBouncer (the version the image installs) running docker/pgbouncer/pgbouncer.ini
 * through docker/pgbouncer/entrypoint.sh, in front of the server `upstream` points at;
 * only the listening port, the server's address and the auth file's path differ from the
 * container. Runs as the postgres user (PgBouncer refuses root) from a private directory;
 * stopped and removed after the test. `extra` lines are added to [pgbouncer].
 */
export async function startPgBouncer(t: Test, upstream: string, { extra = [] as string[] } = {}): Promise<PgBouncer> {
  if (!(await exists(PROGRAMS.pgbouncer.path))) throw new Error(`${PROGRAMS.pgbouncer.path} is missing: the test setup could not install ${PROGRAMS.pgbouncer.pkg}`)
  const url = new URL(upstream)
  const port = await freePort()
  const runAs = await postgresUser()
  const dir = await mkdtemp(join(tmpdir(), 'todos-api-pgbouncer-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await chownTo(dir, runAs)
  const ini = replaceLines(await readFile(PGBOUNCER_INI, 'utf8'), [
    [/^\* = host=db port=5432$/, `* = host=${url.hostname} port=${url.port || 5432}`],
    [/^listen_addr = .*$/, 'listen_addr = 127.0.0.1'],
    [/^listen_port = .*$/, `listen_port = ${port}`],
    [/^auth_file = .*$/, `auth_file = ${join(dir, 'userlist.txt')}`],
    [/^pool_mode = .*$/, 'pool_mode = transaction']
  ]).concat(extra.map((line) => `${line}\n`).join(''))
  const iniPath = join(dir, 'pgbouncer.ini')
  await writeFile(iniPath, ini, { mode: 0o600 })
  await chownTo(iniPath, runAs)
  // The entrypoint is copied in too: the postgres user may not reach the project (a clone
  // in a private directory).
  const entrypoint = join(dir, 'entrypoint.sh')
  await writeFile(entrypoint, await readFile(ENTRYPOINT), { mode: 0o700 })
  await chownTo(entrypoint, runAs)
  const child = spawn(entrypoint, [], {
    ...runAs,
    cwd: dir,
    env: {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
      POSTGRES_USER: decodeURIComponent(url.username),
      POSTGRES_PASSWORD: decodeURIComponent(url.password),
      PGBOUNCER_INI: iniPath,
      PGBOUNCER_AUTH_FILE: join(dir, 'userlist.txt')
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const { output } = watchOutput(child)
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT')
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
      await exited
      clearTimeout(timer)
    }
  })
  await waitForPort(port, () => (child.exitCode !== null ? `pgbouncer exited: ${output.join('\n')}` : undefined))
  return {
    port,
    output,
    through(databaseUrl) {
      const pooled = new URL(databaseUrl)
      pooled.hostname = '127.0.0.1'
      pooled.port = String(port)
      return pooled.toString()
    }
  }
}

/** Resolves once something accepts TCP connections on `port`; `failed()` says why to stop waiting. */
export async function waitForPort(port: number, failed: () => string | undefined, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const reason = failed()
    if (reason) throw new Error(reason)
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port })
      socket.on('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.on('error', () => resolve(false))
    })
    if (open) return
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const exists = (path: string) => readFile(path).then(() => true, () => false)
