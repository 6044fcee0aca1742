import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'
import { chromium, type Browser } from 'playwright-core'

const run = promisify(execFile)

/** Debian's Chromium, driven by playwright-core (Playwright's own browser download is not reachable here). */
export const CHROMIUM = '/usr/bin/chromium'

/**
 * Makes sure Chromium is installed, installing Debian's package when running as root.
 * Returns why it is unavailable, or undefined when it is there. Runs once per test run
 * (from the setup script), so parallel test files never race for the package manager.
 */
export async function ensureChromium(log: (message: string) => void): Promise<string | undefined> {
  if (existsSync(CHROMIUM)) return undefined
  if (process.getuid?.() !== 0) return `${CHROMIUM} is missing and installing it needs root: apt-get install chromium`
  const apt = (args: string[]) =>
    run('apt-get', args, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000, maxBuffer: 64 * 1024 * 1024 })
  log('installing Debian chromium for the browser tests (once)')
  const install = ['install', '-y', '--no-install-recommends', 'chromium']
  try {
    await apt(install)
  } catch {
    try {
      await apt(['update'])
      await apt(install)
    } catch (error) {
      return `Chromium could not be installed (apt-get: ${(error as Error).message.split('\n')[0]})`
    }
  }
  return existsSync(CHROMIUM) ? undefined : `apt-get finished but ${CHROMIUM} is still missing`
}

/** A headless Chromium that cannot reach the network on its own (background services off). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
}
