import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { destroyEmbeddedPostgres } from '../../src/dev/embedded.js'
import { watchOutput } from './output.js'
import { freePort } from './ports.js'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** A temporary directory removed after the test. */
export async function tempDir(t: Test, prefix = 'todos-api-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export interface ServerProcess {
  child: ChildProcess
  port: number
  url: string
  /** Every line the server printed so far (stdout and stderr). */
  output: string[]
  /** Resolves when the process exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resolves with the first line matching `pattern`, rejects if the process exits first. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>
}

const TSX = import.meta.resolve('tsx')

/**
 * Starts the real server as a child process, compiled (`dist/server.js`, which the test
 * setup builds from src/ before any test runs: a second of CPU less per process than
 * through tsx) or any other entry, with `env` on top of a test baseline, from an empty
 * working directory so no `.env` applies. Killed after the test if still running.
 */
export async function startServer(
  t: Test,
  env: Record<string, string>,
  { entry = join(ROOT, 'dist/server.js'), cwd, wrap = [], nodeArgs = [] }: { entry?: string; cwd?: string; wrap?: string[]; nodeArgs?: string[] } = {}
): Promise<ServerProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort()
  const workdir = cwd ?? (await tempDir(t))
  const args = [...nodeArgs, ...(entry.endsWith('.ts') ? ['--import', TSX, entry] : [entry])]
  // `wrap`: a command the server runs under (e.g. unshare), given node and its arguments.
  const [file = process.execPath, ...rest] = [...wrap, process.execPath, ...args]
  const child = spawn(file, rest, {
    cwd: workdir,
    // Acting as the local user without a token, as `make dev` does, with the tests' cheap password hashes (production refuses both).
    env: { PATH: process.env.PATH, NODE_ENV: 'test', HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: '0', LOG_LEVEL: 'info', SHED_EVENT_LOOP_DELAY_MS: '0', DATABASE_MAX_WAIT_MS: '0', ...(env.NODE_ENV === 'production' ? {} : { AUTH_MODE: 'local', PASSWORD_HASH_COST: '10' }), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const { output, waitFor: waitForLine } = watchOutput(child)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  // Generous: a start takes a few seconds, but over 30 s on a busy 2-core machine running four test files.
  const waitFor = async (pattern: RegExp, timeoutMs = 90_000) => output[await waitForLine(pattern, { timeoutMs })] as string
  return { child, port, url: `http://127.0.0.1:${port}`, output, exited, waitFor }
}

/**
 * Runs `src/<script>` to completion, from an empty directory: compiled (dist/, as the
 * image runs its tools), or through tsx for a copy of the project (`root`).
 */
export async function runScript(
  t: Test,
  script: string,
  args: string[],
  env: Record<string, string>,
  { cwd, root = ROOT }: { cwd?: string; root?: string } = {}
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const workdir = cwd ?? (await tempDir(t))
  const entry = root === ROOT ? [join(ROOT, 'dist', script.replace(/\.ts$/, '.js'))] : ['--import', TSX, join(root, 'src', script)]
  const child = spawn(process.execPath, [...entry, ...args], {
    cwd: workdir,
    env: { PATH: process.env.PATH, NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  return { code, stdout, stderr }
}

/**
 * A directory for an embedded cluster of the test's own. Afterwards any server still
 * running there is stopped before the directory goes (a server whose data directory was
 * deleted can never be stopped cleanly).
 */
export async function embeddedClusterDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'todos-api-pg-'))
  await chmod(dir, 0o755) // as root, the server runs as the postgres user
  t.teardown(async () => {
    await destroyEmbeddedPostgres(join(dir, 'pg'))
    await rm(dir, { recursive: true, force: true })
  })
  return join(dir, 'pg')
}

/** Polls `url`/health/ready until it answers 200. */
export async function waitReady(url: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const status = await fetch(`${url}/health/ready`).then((response) => response.status, () => 0)
    if (status === 200) return
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
