/** Runs once after the test files (tap's `after`): stops the run's embedded server. */
import { rm } from 'node:fs/promises'
import { destroyEmbeddedPostgres } from '../../src/dev/embedded.js'
import { readClusterState, STATE_FILE, TEMPLATE_CLUSTER_DIR } from './cluster.js'

const state = readClusterState()
if (state.embeddedDataDir) {
  await destroyEmbeddedPostgres(state.embeddedDataDir)
}
await destroyEmbeddedPostgres(TEMPLATE_CLUSTER_DIR)
await rm(STATE_FILE, { force: true })
