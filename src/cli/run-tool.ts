import { loadConfigOrExit, type Config } from '../config.js'
import { connectDatabase } from '../prepare-database.js'

/** What a command-line tool gets: the config and a reachable database. */
export interface ToolContext {
  config: Config
  /** The direct connection (MIGRATION_DATABASE_URL when set): tools need sessions a pooler would not keep. */
  connectionString: string
  /** Progress for people, on stderr so stdout stays clean for data. */
  say(message: string): void
}

/**
 * Runs a small tool the way the server boots: config from `.env` and the environment,
 * the same database resolution (DATABASE_URL, POSTGRES_*, or the embedded server), the
 * same wait. Exit code 0 on success, 1 with a one-line reason otherwise.
 */
export async function runTool(
  name: string,
  task: (context: ToolContext) => Promise<void>,
  /** Checks made before touching any database; throwing stops the tool. */
  precheck: (config: Config) => void = () => {}
): Promise<void> {
  const say = (message: string) => process.stderr.write(`${name}: ${message}\n`)
  const config = loadConfigOrExit()
  let release = async () => {}
  try {
    precheck(config)
    const target = await connectDatabase(
      config,
      { info: say, retry: ({ delayMs, reason }) => say(`database not ready (${reason}); retrying in ${delayMs} ms`) },
      { directOnly: true }
    )
    release = target.release
    await task({ config, connectionString: target.migrationConnectionString, say })
  } catch (error) {
    say(`failed: ${(error as Error).message}`)
    process.exitCode = 1
  } finally {
    await release().catch(() => {})
  }
}
