// Runs test/db/*.test.ts in this one process (see test/support/folder.ts).
import { importTests } from './support/folder.js'

await importTests(new URL('./db/', import.meta.url))
