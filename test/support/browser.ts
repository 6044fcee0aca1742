import { chromium, type Browser } from 'playwright-core'
import { PROGRAMS } from './packages.js'

/** Debian's Chromium (installed by the setup script), driven by playwright-core (Playwright's own browser download is not reachable here). */
export const CHROMIUM = PROGRAMS.chromium.path

/** A headless Chromium that cannot reach the network on its own (background services off). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
}
