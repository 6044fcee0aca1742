import { inWords, seedDatabase } from '../dev/seed.js'
import { runTool } from './run-tool.js'

/** `make seed`: adds the demo rows of every resource that are not there yet. */
await runTool('seed', async ({ connectionString, say }) => {
  const seeded = await seedDatabase(connectionString)
  say(`added ${inWords(Object.entries(seeded).map(([plural, { added, total }]) => `${added} ${plural} (${total} in all)`))}`)
})
