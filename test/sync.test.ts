// Runs test/sync/*.test.ts in this one process (see test/support/folder.ts).
import { importTests } from './support/folder.js'

await importTests(new URL('./sync/', import.meta.url))
