import type { Config } from '../config.js'
import { migrationLimits, runMigrations } from '../db/migrate.js'
import { inWords, seedDatabase } from '../dev/seed.js'
import { runTool } from './run-tool.js'

/**
 * `make resetdb [seed=1] [FORCE=1]`: every migration down to zero (dropping everything
 * they created, and proving each down part works), then up again, then demo data if
 * asked. Refuses a production database unless forced.
 */
const args = new Set(process.argv.slice(2))
const unknown = [...args].filter((arg) => arg !== '--seed' && arg !== '--force')
if (unknown.length > 0) {
  process.stderr.write(`resetdb: unknown argument ${unknown.join(' ')}\nusage: resetdb [--seed] [--force]\n`)
  process.exit(2)
}

const refuseProduction = (config: Config) => {
  if (config.NODE_ENV === 'production' && !args.has('--force')) {
    throw new Error(
      'refusing to reset a database with NODE_ENV=production: every table and row would be dropped. ' +
        'Run `make resetdb FORCE=1` if that is what you want.'
    )
  }
}

await runTool('resetdb', async ({ config, connectionString, say }) => {
  const limits = migrationLimits(config)
  const reverted = await runMigrations(connectionString, { direction: 'down', count: Number.POSITIVE_INFINITY, limits })
  say(reverted.length ? `reverted ${reverted.length} migration(s): ${reverted.join(', ')} (their tables and data are gone)` : 'no migrations to revert')
  const applied = await runMigrations(connectionString, { limits })
  say(`applied ${applied.length} migration(s): ${applied.join(', ')}`)
  if (args.has('--seed')) {
    const seeded = await seedDatabase(connectionString)
    say(`seeded ${inWords(Object.entries(seeded).map(([plural, { added }]) => `${added} ${plural}`))}`)
  }
  say(`done: the schema is at the latest migration and the tables hold ${args.has('--seed') ? 'only the demo data' : 'no rows'}`)
}, refuseProduction)
