import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'

/** Compile caches of the tools that run the tests (tsx, jiti, V8): transpiled public source, nothing of ours. */
const TOOL_CACHES = /^\/tmp\/(tsx-\d+|jiti|v8-compile-cache-\d+|hsperfdata_\w+|node-compile-cache)(\/|$)/

/**
 * Files under /tmp, /var/tmp and /var/lib/todos-api that another user could read:
 * readable by others, in directories every user can search. Compare a snapshot before
 * and after.
 */
export async function exposedFiles(): Promise<Set<string>> {
  const found = new Set<string>()
  const visit = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
    for (const entry of entries) {
      const path = join(dir, entry.name)
      if (TOOL_CACHES.test(path)) continue
      const info = await stat(path).catch(() => undefined)
      if (!info) continue
      if (info.isDirectory()) {
        if (info.mode & 0o001) await visit(path)
      } else if (info.mode & 0o004) {
        found.add(path)
      }
    }
  }
  await visit('/tmp')
  await visit('/var/tmp')
  await visit('/var/lib/todos-api')
  return found
}

/** What became readable by others since `before`. */
export async function newlyExposed(before: Set<string>): Promise<string[]> {
  return [...(await exposedFiles())].filter((path) => !before.has(path))
}
