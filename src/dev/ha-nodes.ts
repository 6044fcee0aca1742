import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { postgresUser, run } from './embedded-host.js'

// Asking the nodes of an HA stack (Patroni's REST API) and signalling them: for ha-stack.ts
// and `make ha-failover`.

/** A PostgreSQL node under Patroni: its name, ports and data directory. */
export interface HaNode {
  name: string
  pgPort: number
  restPort: number
  dataDir: string
}

/** The node whose Patroni answers /primary with 200, if any. */
export async function leaderOf(nodes: HaNode[]): Promise<HaNode | undefined> {
  const answers = await Promise.all(nodes.map((node) => restStatus(node, '/primary')))
  return nodes[answers.indexOf(200)]
}

/**
 * SIGKILL to a node's postmaster, sent as the postgres user: the pid comes from a file that
 * user can write, and so may only name that user's processes.
 */
export async function killPostmaster(node: HaNode): Promise<void> {
  const pid = Number((await readFile(join(node.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`${node.name}: no postmaster pid`)
  await run('/bin/kill', ['-KILL', '--', String(pid)], await postgresUser())
}

export function killQuietly(pid: number) {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

export const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })

export const httpStatus = (url: string) =>
  fetch(url, { signal: AbortSignal.timeout(1000) }).then(
    async (answer) => {
      await answer.arrayBuffer()
      return answer.status
    },
    () => 0
  )

/** What Patroni's REST API answers for a role check: 200 when the node is in that role. */
export const restStatus = (node: HaNode, path: string) => httpStatus(`http://127.0.0.1:${node.restPort}${path}`)

export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const found = await check()
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs / 1000} s`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
