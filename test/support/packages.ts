import { ensureDebianPrograms } from '../../src/dev/debian-packages.js'
import { HA_PROGRAMS } from '../../src/dev/ha-stack.js'

/** The programs the tests run for real, and the Debian package each comes from. */
export const PROGRAMS = {
  prometheus: { path: '/usr/bin/prometheus', pkg: 'prometheus' },
  promtool: { path: '/usr/bin/promtool', pkg: 'prometheus' },
  chromium: { path: '/usr/bin/chromium', pkg: 'chromium' },
  pgbouncer: { path: '/usr/sbin/pgbouncer', pkg: 'pgbouncer' },
  nginx: { path: '/usr/sbin/nginx', pkg: 'nginx-light' },
  ...HA_PROGRAMS
} as const

export type Program = keyof typeof PROGRAMS

/**
 * Installs the Debian packages of the programs that are missing, in one apt-get run. Runs
 * once per test run (from the setup script), so parallel test files never race for the
 * package manager.
 */
export const ensurePrograms = (log: (message: string) => void) => ensureDebianPrograms(PROGRAMS, (message) => log(`${message} for the tests`))
