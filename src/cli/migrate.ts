import { relative } from 'node:path'
import { withClient } from '../db/client.js'
import { createMigration, pendingMigrations, runMigrations } from '../db/migrate.js'
import { runTool } from './run-tool.js'

/**
 * `migrate up` applies every pending migration, `migrate down` reverts the last one,
 * `migrate status` lists what is pending, `migrate create <name>` adds the next numbered
 * file. Against DATABASE_URL (a remote database too) or the embedded server.
 */
const [command = 'up', argument] = process.argv.slice(2)

if (command === 'create') {
  try {
    const file = await createMigration(argument ?? '')
    process.stdout.write(`created ${relative(process.cwd(), file)}: write the change under "-- Up Migration" and its undo under "-- Down Migration"\n`)
  } catch (error) {
    process.stderr.write(`migrate: ${(error as Error).message}\n`)
    process.exitCode = 1
  }
} else if (command === 'up' || command === 'down') {
  await runTool('migrate', async ({ connectionString, say }) => {
    const names = await runMigrations(connectionString, { direction: command, logger: { info: () => {}, warn: say } })
    if (names.length === 0) say(command === 'up' ? 'nothing to apply: the schema is up to date' : 'nothing to revert')
    for (const name of names) say(`${command === 'up' ? 'applied' : 'reverted'} ${name}`)
  })
} else if (command === 'status') {
  await runTool('migrate', async ({ connectionString, say }) => {
    const pending = await withClient(connectionString, (client) => pendingMigrations(client))
    say(pending.length === 0 ? 'up to date' : `pending: ${pending.join(', ')}`)
  })
} else {
  process.stderr.write('usage: migrate [up | down | status | create <name>]\n')
  process.exitCode = 2
}
