/** Runs once after the test files (tap's `after`): stops the run's embedded server. */
import { rm } from 'node:fs/promises'
import { stopEmbeddedPostgres } from '../../src/db/embedded.js'
import { readClusterState, STATE_FILE } from './cluster.js'

const state = readClusterState()
if (state.embeddedDataDir) {
  await stopEmbeddedPostgres(state.embeddedDataDir, 'immediate')
  await rm(state.embeddedDataDir, { recursive: true, force: true })
}
await rm(STATE_FILE, { force: true })
