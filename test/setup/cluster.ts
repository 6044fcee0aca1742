import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** What the run's setup script leaves for every test file: where the template database is. */
export interface ClusterState {
  /** Connection string to the server's maintenance database (`postgres`). */
  adminUrl: string
  /** Migrated database each test file clones its own database from. */
  templateDatabase: string
  /** Set when the setup script started an embedded server (and the teardown stops it). */
  embeddedDataDir?: string
  /** A stopped cluster (user and password postgres) that private clusters start as a copy of. */
  clusterTemplate?: string
  /** Why the browser tests cannot run, when Chromium is missing and could not be installed. */
  chromiumProblem?: string
  /** Programs (PgBouncer, nginx...) missing after the setup tried to install them, and why. */
  programProblems?: Record<string, string>
}

export const STATE_FILE = fileURLToPath(new URL('../../.data/test-cluster.json', import.meta.url))
export const TEST_DATA_DIR = fileURLToPath(new URL('../../.data/test-postgres', import.meta.url))
export const TEMPLATE_CLUSTER_DIR = fileURLToPath(new URL('../../.data/test-cluster-template', import.meta.url))

/**
 * The start of the name of a failover test's HA stack directory: this checkout's own, so
 * the teardown of one checkout's run never kills another's stack (or `make ha`'s).
 */
export const HA_TEST_PREFIX = `ha-test-${createHash('sha256').update(fileURLToPath(new URL('../..', import.meta.url))).digest('hex').slice(0, 8)}-`

export function readClusterState(): ClusterState {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as ClusterState
  } catch {
    throw new Error('no test database: run the tests with `make test` (or `npx tap`), whose setup script starts one')
  }
}
