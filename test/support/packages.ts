import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The programs the tests run for real, and the Debian package each comes from. */
export const PROGRAMS = {
  prometheus: { path: '/usr/bin/prometheus', pkg: 'prometheus' },
  promtool: { path: '/usr/bin/promtool', pkg: 'prometheus' },
  chromium: { path: '/usr/bin/chromium', pkg: 'chromium' },
  pgbouncer: { path: '/usr/sbin/pgbouncer', pkg: 'pgbouncer' },
  nginx: { path: '/usr/sbin/nginx', pkg: 'nginx-light' }
} as const

export type Program = keyof typeof PROGRAMS

/**
 * Installs the Debian packages of the programs that are missing, in one apt-get run, as
 * root. Returns, per program still missing afterwards, why. Runs once per test run (from
 * the setup script), so parallel test files never race for the package manager.
 */
export async function ensurePrograms(log: (message: string) => void): Promise<Partial<Record<Program, string>>> {
  const missing = (Object.keys(PROGRAMS) as Program[]).filter((name) => !existsSync(PROGRAMS[name].path))
  if (missing.length === 0) return {}
  const problems: Partial<Record<Program, string>> = {}
  if (process.getuid?.() !== 0) {
    for (const name of missing) problems[name] = `${PROGRAMS[name].path} is missing and installing it needs root: apt-get install ${PROGRAMS[name].pkg}`
    return problems
  }
  const apt = (args: string[]) =>
    run('apt-get', args, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000, maxBuffer: 64 * 1024 * 1024 })
  const packages = [...new Set(missing.map((name) => PROGRAMS[name].pkg))]
  log(`installing Debian ${packages.join(', ')} for the tests (once)`)
  const install = ['install', '-y', '--no-install-recommends', ...packages]
  let failure: string | undefined
  try {
    await apt(install)
  } catch {
    try {
      await apt(['update'])
      await apt(install)
    } catch (error) {
      failure = (error as Error).message.split('\n')[0]
    }
  }
  for (const name of missing) {
    if (!existsSync(PROGRAMS[name].path)) problems[name] = `${PROGRAMS[name].pkg} could not be installed${failure ? ` (apt-get: ${failure})` : ''}`
  }
  return problems
}
