import { relative } from 'node:path'
import { parseArgs } from 'node:util'
import { withClient } from '../db/client.js'
import { MIGRATIONS_DIR, createMigration, migrationFiles } from '../db/migration-files.js'
import { STATUS_EXIT, exitCodeOf, migrationStatus, resolveName, type MigrationStatus } from '../db/migration-status.js'
import { acceptMigration, forgetMigration, migrate, migrationLimits } from '../db/migrate.js'
import { runTool } from './run-tool.js'

/**
 * The migration commands (the Makefile's migrate* targets; `node dist/cli/migrate.js …`
 * in the image), against the direct connection (MIGRATION_DATABASE_URL, DATABASE_URL,
 * POSTGRES_*, or the embedded server):
 *
 *   up [--dry-run] [--baseline NNNN]   apply what is pending (--dry-run: print the SQL, change nothing)
 *   down                               revert the last applied migration
 *   status                             every migration's state; exit 0 current, 3 pending, 4 drift
 *   accept NNNN                        a changed file: the database matches it as it is now
 *   forget NNNN                        a missing file: its migration is no longer recorded as applied
 *   create <name>                      the next numbered file, with both parts
 */
const USAGE = 'usage: migrate [up [--dry-run] [--baseline NNNN] | down | status | accept NNNN | forget NNNN | create <name>]\n'
const { positionals, values } = (() => {
  try {
    return parseArgs({ allowPositionals: true, options: { 'dry-run': { type: 'boolean' }, baseline: { type: 'string' } } })
  } catch (error) {
    process.stderr.write(`migrate: ${(error as Error).message}\n${USAGE}`)
    process.exit(2)
  }
})()
const [command = 'up', argument] = positionals

const STATE_LABEL: Record<MigrationStatus['state'], string> = { applied: 'applied', pending: 'pending', changed: 'CHANGED', missing: 'MISSING' }

if (command === 'create') {
  try {
    const file = await createMigration(argument ?? '')
    process.stdout.write(
      `created ${relative(process.cwd(), file)}: write the change under "-- Up Migration" and its undo under "-- Down Migration"; ` +
        'it is applied by the next `make migrate` (or `make dev` start), never while it has no SQL\n'
    )
  } catch (error) {
    process.stderr.write(`migrate: ${(error as Error).message}\n`)
    process.exitCode = 1
  }
} else if (command === 'up' || command === 'down') {
  await runTool('migrate', async ({ config, connectionString, say }) => {
    const dryRun = values['dry-run'] === true
    const run = await migrate(connectionString, {
      direction: command,
      dryRun,
      ...(values.baseline ? { baseline: values.baseline } : {}),
      limits: migrationLimits(config),
      logger: { info: () => {}, warn: say }
    })
    if (run.names.length === 0) say(command === 'up' ? 'nothing to apply: the schema is up to date' : 'nothing to revert')
    if (dryRun) {
      // The SQL on stdout (to read or to pipe), what would happen on stderr.
      for (const [i, name] of run.names.entries()) process.stdout.write(`-- ${name} (${command})\n${(run.sql[i] ?? '').trim()}\n\n`)
      if (run.names.length > 0) say(`dry run: would ${command === 'up' ? 'apply' : 'revert'} ${run.names.join(', ')} (in one transaction); nothing was changed`)
      return
    }
    for (const name of run.names) say(`${command === 'up' ? 'applied' : 'reverted'} ${name}`)
  })
} else if (command === 'status') {
  await runTool('migrate', async ({ connectionString }) => {
    const entries = await withClient(connectionString, async (client) => migrationStatus(client, await migrationFiles()))
    for (const entry of entries) {
      const when = entry.runOn ? entry.runOn.toISOString().replace('T', ' ').slice(0, 19) : ''
      const note = entry.empty ? 'no SQL yet: not applied until it has some' : entry.ahead ? 'a newer release ran it' : ''
      process.stdout.write(`${STATE_LABEL[entry.state].padEnd(8)} ${entry.name.padEnd(40)} ${when.padEnd(19)} ${note}`.trimEnd() + '\n')
    }
    const code = exitCodeOf(entries)
    const summary = {
      [STATUS_EXIT.current]: 'up to date: every migration applied, none changed',
      [STATUS_EXIT.pending]: 'pending migrations: make migrate applies them',
      [STATUS_EXIT.drift]: 'drift: a file changed or missing since it ran; make migrate says what to do'
    }[code]
    process.stderr.write(`migrate: ${summary}\n`)
    process.exitCode = code
  })
} else if ((command === 'accept' || command === 'forget') && argument) {
  await runTool('migrate', async ({ connectionString, say }) => {
    await withClient(connectionString, async (client) => {
      const files = await migrationFiles()
      const entries = await migrationStatus(client, files)
      const name = resolveName(argument, entries.map((entry) => entry.name))
      const entry = entries.find((candidate) => candidate.name === name)
      if (command === 'accept') {
        const file = files.find((candidate) => candidate.name === name)
        if (entry?.state !== 'changed' || !file) throw new Error(`${name} is ${entry?.state ?? 'unknown'}, not changed: nothing to accept`)
        await acceptMigration(client, file)
        say(`${name}: recorded as it is now in ${relative(process.cwd(), file.path) || MIGRATIONS_DIR}; the database is taken to match it`)
      } else {
        if (entry?.state !== 'missing') throw new Error(`${name} is ${entry?.state ?? 'unknown'}, not missing: only a migration whose file is gone can be forgotten`)
        await forgetMigration(client, name)
        say(`${name}: no longer recorded as applied (what it made, if anything is left, stays in the database)`)
      }
    })
  })
} else {
  process.stderr.write(USAGE)
  process.exitCode = 2
}
