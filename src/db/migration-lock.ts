import type pg from 'pg'
import type { Config } from '../config.js'
import { MigrationError } from './migration-files.js'

/** node-pg-migrate's own lock key: a runner of another version still queues behind ours. */
export const MIGRATION_LOCK = 7_241_865_325_823_964

export interface MigrationLogger {
  info(message: string): void
  warn(message: string): void
}

/** The time limits of a run (MIGRATION_* settings), in milliseconds. */
export interface MigrationLimits {
  /** How long one statement may wait for a table lock before the run gives up and retries. */
  lockTimeoutMs: number
  /** How many times a run that met a busy table is retried (with doubling pauses). */
  lockRetries: number
  /** How long one statement may run. */
  statementTimeoutMs: number
  /** How long to wait for another instance's migration run (the advisory lock). */
  lockWaitMs: number
}

export const DEFAULT_LIMITS: MigrationLimits = { lockTimeoutMs: 5000, lockRetries: 4, statementTimeoutMs: 15 * 60_000, lockWaitMs: 120_000 }

/** The limits the MIGRATION_* settings ask for. */
export const migrationLimits = (config: Config): MigrationLimits => ({
  lockTimeoutMs: config.MIGRATION_LOCK_TIMEOUT_MS,
  lockRetries: config.MIGRATION_LOCK_RETRIES,
  statementTimeoutMs: config.MIGRATION_STATEMENT_TIMEOUT_MS,
  lockWaitMs: config.MIGRATION_LOCK_WAIT_SECONDS * 1000
})

/** `run` again while it fails on a lock it could not get in time (55P03), pausing longer each time. */
export async function withLockRetries<T>(limits: MigrationLimits, delayMs: number, logger: MigrationLogger, run: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await run()
    } catch (error) {
      const busy = (error as { cause?: { code?: string } }).cause?.code === '55P03'
      if (!busy || attempt >= limits.lockRetries) {
        if (busy) throw new MigrationError(`${(error as Error).message} (a table stayed locked by other sessions through ${attempt + 1} attempts; find them in pg_stat_activity)`, { cause: error })
        throw error
      }
      const pause = delayMs * 2 ** attempt
      logger.warn(`a table the migration needs is busy (lock_timeout ${limits.lockTimeoutMs} ms); nothing was applied; retrying in ${pause} ms`)
      await new Promise((resolve) => setTimeout(resolve, pause))
    }
  }
}

/** node-pg-migrate's advisory lock, waited for up to `waitMs`; past that, an error naming who holds it. */
export async function acquireLock(client: pg.Client, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs
  for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK])
    if (rows[0]?.locked) return
    if (Date.now() >= deadline) throw new MigrationError(`another migration run still holds the migration lock after ${Math.round(waitMs / 1000)} s: ${await lockHolder(client)}`)
    await new Promise((resolve) => setTimeout(resolve, pause))
  }
}

/** Who holds this database's migration lock (an advisory lock is per database: other databases of the server have their own). */
async function lockHolder(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ pid: number; application_name: string; client_addr: string | null; backend_start: Date; state: string; query: string }>(
    `SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start, a.state, left(a.query, 60) AS query
       FROM pg_locks l JOIN pg_stat_activity a USING (pid)
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [Math.floor(MIGRATION_LOCK / 2 ** 32), MIGRATION_LOCK % 2 ** 32]
  )
  const holder = rows[0]
  if (!holder) return 'the holder has just let go; try again'
  return (
    `pid ${holder.pid} (${holder.application_name || 'no application_name'}${holder.client_addr ? ` from ${holder.client_addr}` : ''}, ` +
    `connected ${holder.backend_start.toISOString()}, ${holder.state}: ${holder.query}); if it is stuck, SELECT pg_terminate_backend(${holder.pid})`
  )
}

