import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'

/** A pino logger at `info` whose lines land, parsed, in `lines`: what the app logged, to assert on. */
export function collectingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  return { logger: pino({ level: 'info' }, sink), lines }
}
