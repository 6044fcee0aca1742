import { parseArgs } from 'node:util'
import { createAccountStore } from '../accounts/store.js'
import { clientDatabase, withClient } from '../db/client.js'
import { pendingMigrations } from '../db/migrate.js'
import { runTool } from './run-tool.js'

/**
 * `make user email=… name=…` (`node dist/cli/users.js create --email … --name …` in the
 * image): creates a user and prints a first token, on stdout and nothing else, so
 * `TOKEN=$(make -s user …)` works. The way into a service whose sign-up is closed. The
 * user has no password until they set one (`PATCH /users/me` with the token).
 */
const USAGE = 'usage: users create --email <email> --name <name> [--token-name <name>]'

let parsed
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { email: { type: 'string' }, name: { type: 'string' }, 'token-name': { type: 'string', default: 'first token (make user)' } }
  })
} catch (error) {
  process.stderr.write(`users: ${(error as Error).message}\n${USAGE}\n`)
  process.exit(2)
}
const { positionals, values } = parsed
const email = values.email?.trim()
const name = values.name?.trim()
if (positionals.join(' ') !== 'create' || !email || !name) {
  process.stderr.write(`${USAGE}\n`)
  process.exit(2)
}

await runTool('users', async ({ connectionString, say }) => {
  await withClient(connectionString, async (client) => {
    const pending = await pendingMigrations(client)
    if (pending.length > 0) throw new Error(`the database has migrations pending (${pending.join(', ')}): run \`make migrate\` first`)
    const accounts = createAccountStore(clientDatabase(client))
    await client.query('BEGIN')
    try {
      const user = await accounts.createUser({ email, name, passwordHash: null }).catch((error: { constraint?: string }) => {
        throw error.constraint === 'users_email_key' ? new Error(`a user with the email ${email} already exists`) : error
      })
      const token = await accounts.createToken(user.id, values['token-name'], null)
      if (token === undefined) throw new Error('the user vanished while its token was made')
      await client.query('COMMIT')
      say(`created user ${user.id} (${user.email}); their first token follows. It is shown once: keep it somewhere safe.`)
      process.stdout.write(`${token.token}\n`)
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    }
  })
})
