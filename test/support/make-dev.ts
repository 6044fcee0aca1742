/** `make dev` run as a person runs it, for the tests of the dev runner. */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import { freePort } from './ports.js'
import { watchOutput } from './output.js'

export interface Dev {
  output: string[]
  exited: Promise<number | null>
  waitFor(pattern: RegExp, from?: number): Promise<number>
  /** Ctrl-C: SIGINT to the process group, as a terminal sends it. */
  interrupt(): void
}

/** `make dev` in `dir`, in a process group of its own (a terminal's foreground job), JSON logs. */
export async function makeDev(t: Test, dir: string, env: Record<string, string>): Promise<Dev> {
  // -o: never (re)install here; a copied project's node_modules is a link to the real one.
  const child = spawn('make', ['--no-print-directory', '-o', 'node_modules/.package-lock.json', 'dev'], {
    cwd: dir,
    detached: true,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_PRETTY: 'false', SEED_ON_START: 'false', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const { output, waitFor: waitForLine } = watchOutput(child)
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
  t.teardown(() => {
    try {
      process.kill(-(child.pid as number), 'SIGKILL')
    } catch {}
  })
  const waitFor = (pattern: RegExp, from = 0) => waitForLine(pattern, { from, timeoutMs: 60_000 })
  return { output, exited, waitFor, interrupt: () => process.kill(-(child.pid as number), 'SIGINT') }
}

/** What the service and the runner said, in order: log messages, without make's own lines. */
export const messages = (output: string[]) =>
  output
    .filter((line) => line.trim() !== '' && !line.startsWith('make: ***'))
    .map((line) => {
      try {
        return String((JSON.parse(line) as { msg?: unknown }).msg)
      } catch {
        return line
      }
    })

/** The postmaster's pid, or undefined when no server runs on the cluster. */
export async function postmaster(dataDir: string): Promise<number | undefined> {
  const { clusterDir } = await import('../../src/dev/embedded-host.js')
  const pidFile = join(await clusterDir(dataDir), 'postmaster.pid')
  if (!existsSync(pidFile)) return undefined
  const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0])
  try {
    process.kill(pid, 0)
    return pid
  } catch {
    return undefined
  }
}

export const devEnv = async (dataDir: string) => ({
  PORT: String(await freePort()),
  EMBEDDED_POSTGRES_DIR: dataDir,
  EMBEDDED_POSTGRES_PORT: String(await freePort())
})
