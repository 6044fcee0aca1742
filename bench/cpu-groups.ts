/**
 * The database and the service each in a CPU cgroup of their own, as compose runs them
 * (one container each), for benchmarks where PostgreSQL works hard on the same cores.
 * Outside cgroups, Linux's autogroup scheduling gives each session an equal share, and
 * every PostgreSQL backend starts a session of its own: ten busy backends then leave the
 * service's event loop about a tenth of the CPU, and the bench measures that, not the
 * service (docs/benchmarks.md, "Overload"). The load generator stays where it is. The bench
 * runs from the root cgroup (as root on this machine), so that is where processes go back.
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, readdir, rmdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export type Group = (typeof GROUPS)[number]

export interface CpuGroups {
  /** Moves `pid` and its children (their children are forked into the group from then on). */
  add(group: Group, pid: number): Promise<void>
  /** Moves what is left back to the root and removes the groups. */
  remove(): Promise<void>
}

/** The groups, or why there are none (not root, or no cgroup with the cpu controller). */
export async function cpuGroups(): Promise<CpuGroups | { unavailable: string }> {
  const v1 = '/sys/fs/cgroup/cpu'
  const v2 = '/sys/fs/cgroup'
  let root: string
  if (existsSync(join(v1, 'cpu.shares'))) root = v1
  else if ((await readFile(join(v2, 'cgroup.controllers'), 'utf8').catch(() => '')).split(/\s+/).includes('cpu')) root = v2
  else return { unavailable: 'no cgroup with the cpu controller' }
  // Groups an interrupted run left behind (its pid is gone): their processes back to the root, then removed.
  for (const stale of await readdir(root).catch(() => [] as string[])) {
    const pid = /^todos-api-bench-(\d+)$/.exec(stale)?.[1]
    if (pid !== undefined && !existsSync(`/proc/${pid}`)) await removeGroups(root, join(root, stale))
  }
  const parent = join(root, `todos-api-bench-${process.pid}`)
  const dir = (group: Group) => join(parent, group)
  try {
    if (root === v2) await writeFile(join(root, 'cgroup.subtree_control'), '+cpu')
    await mkdir(parent)
    if (root === v2) await writeFile(join(parent, 'cgroup.subtree_control'), '+cpu')
    for (const group of GROUPS) await mkdir(dir(group))
  } catch (error) {
    await removeGroups(root, parent)
    return { unavailable: `cannot make a cgroup (${(error as NodeJS.ErrnoException).code ?? String(error)})` }
  }
  const children = async (pid: number) =>
    (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')).split(/\s+/).filter(Boolean).map(Number)
  const move = async (target: string, pid: number) => {
    await writeFile(join(target, 'cgroup.procs'), String(pid)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ESRCH') throw error // ESRCH: it exited meanwhile
    })
    for (const child of await children(pid)) await move(target, child)
  }
  return { add: (group, pid) => move(dir(group), pid), remove: () => removeGroups(root, parent) }
}

const GROUPS = ['database', 'service'] as const

/** Moves what is left in `parent`'s groups to `root` (where the bench's processes were) and removes them. */
async function removeGroups(root: string, parent: string) {
  for (const group of GROUPS) {
    const left = (await readFile(join(parent, group, 'cgroup.procs'), 'utf8').catch(() => '')).split(/\s+/).filter(Boolean)
    for (const pid of left) await writeFile(join(root, 'cgroup.procs'), pid).catch(() => {})
    await rmdir(join(parent, group)).catch(() => {})
  }
  await rmdir(parent).catch(() => {})
}
