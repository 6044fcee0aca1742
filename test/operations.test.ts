// Runs test/operations/*.test.ts in this one process (see test/support/folder.ts).
import { importTests } from './support/folder.js'

await importTests(new URL('./operations/', import.meta.url))
