import type { FastifyInstance } from 'fastify'
import { errorLine } from './logger.js'

/**
 * Runs `task` every `everyMs` while the app runs (from onReady to onClose), on every
 * instance: a task that deletes what expired, in bounded batches, is safe to run from
 * several at once. What it returns is logged when it is not zero; a failure is logged
 * and the next run tries again.
 */
export function runPeriodically(app: FastifyInstance, what: string, everyMs: number, task: () => Promise<number>): void {
  let timer: NodeJS.Timeout | undefined
  const run = async () => {
    try {
      const count = await task()
      if (count > 0) app.log.info({ count }, `${what} deleted`)
    } catch (error) {
      app.log.warn({ reason: errorLine(error) }, `could not delete ${what}`)
    }
  }
  app.addHook('onReady', async () => {
    timer = setInterval(() => void run(), everyMs).unref()
  })
  app.addHook('onClose', async () => clearInterval(timer))
}
