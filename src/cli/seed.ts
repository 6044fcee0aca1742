import { seedDatabase } from '../dev/seed.js'
import { runTool } from './run-tool.js'

/** `make seed`: adds the demo todos and cats that are not there yet. */
await runTool('seed', async ({ connectionString, say }) => {
  const { todos, cats } = await seedDatabase(connectionString)
  say(`added ${todos.added} todos (${todos.total} in all) and ${cats.added} cats (${cats.total} in all)`)
})
