import { spawn } from 'node:child_process'
import { childProcessEnv } from '../config.js'
import { runTool } from './run-tool.js'

/**
 * Opens psql on the configured database (starting the embedded one if needed). The
 * password travels in PGPASSWORD, not on the command line where `ps` would show it.
 */
await runTool('psql', async ({ connectionString, say }) => {
  const url = new URL(connectionString)
  const password = decodeURIComponent(url.password)
  url.password = ''
  const code = await new Promise<number>((resolve) => {
    const child = spawn('psql', [url.toString()], { stdio: 'inherit', env: childProcessEnv({ PGPASSWORD: password }) })
    child.on('error', () => {
      say('psql is not installed (Debian/Ubuntu: apt-get install postgresql-client; macOS: brew install libpq)')
      say(`connect with any client to ${url.toString()} (the password is in .env)`)
      resolve(1)
    })
    child.on('exit', (status) => resolve(status ?? 1))
  })
  if (code !== 0) process.exitCode = code
})
