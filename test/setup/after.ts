/**
 * Runs once after the test files (tap's `after`): stops the run's embedded server, and
 * whatever a failover test killed halfway (a file timing out) left of its HA stack.
 */
import { execFile } from 'node:child_process'
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { destroyEmbeddedPostgres } from '../../src/dev/embedded.js'
import { HA_TEST_PREFIX, readClusterState, STATE_FILE, TEMPLATE_CLUSTER_DIR } from './cluster.js'

const state = readClusterState()
if (state.embeddedDataDir) {
  await destroyEmbeddedPostgres(state.embeddedDataDir)
}
await destroyEmbeddedPostgres(TEMPLATE_CLUSTER_DIR)
await rm(STATE_FILE, { force: true })
// The stacks' processes are detached, and name their directory (.data/<prefix><pid>, or
// /var/lib/todos-api/<prefix><pid>-<hash>) in their arguments.
await promisify(execFile)('pkill', ['-KILL', '-f', `/${HA_TEST_PREFIX}`]).catch(() => {})
for (const dir of [fileURLToPath(new URL('../../.data/', import.meta.url)), '/var/lib/todos-api']) {
  for (const name of await readdir(dir).catch(() => [])) if (name.startsWith(HA_TEST_PREFIX)) await rm(join(dir, name), { recursive: true, force: true })
}
