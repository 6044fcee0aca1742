import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'
import { childProcessEnv } from '../config.js'

const run = promisify(execFile)

/** A program and the Debian package it comes from. */
export interface DebianProgram {
  path: string
  pkg: string
}

/**
 * Installs the Debian packages of the programs that are missing, in one apt-get run, as
 * root (updating the package lists only if the first try fails). Returns, per program
 * still missing afterwards, why.
 */
export async function ensureDebianPrograms<Name extends string>(
  programs: Record<Name, DebianProgram>,
  log: (message: string) => void
): Promise<Partial<Record<Name, string>>> {
  const missing = (Object.keys(programs) as Name[]).filter((name) => !existsSync(programs[name].path))
  if (missing.length === 0) return {}
  const problems: Partial<Record<Name, string>> = {}
  if (process.getuid?.() !== 0) {
    for (const name of missing) problems[name] = `${programs[name].path} is missing and installing it needs root: apt-get install ${programs[name].pkg}`
    return problems
  }
  const apt = (args: string[]) =>
    run('apt-get', args, { env: childProcessEnv({ DEBIAN_FRONTEND: 'noninteractive' }), timeout: 600_000, maxBuffer: 64 * 1024 * 1024 })
  const packages = [...new Set(missing.map((name) => programs[name].pkg))]
  log(`installing Debian ${packages.join(', ')} (once)`)
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
    if (!existsSync(programs[name].path)) problems[name] = `${programs[name].pkg} could not be installed${failure ? ` (apt-get: ${failure})` : ''}`
  }
  return problems
}
