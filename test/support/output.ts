import type { ChildProcess } from 'node:child_process'

export interface WatchedOutput {
  /** Every line the process printed so far (stdout and stderr). */
  output: string[]
  /** The index of the first line at or after `from` matching `pattern`; rejects if the process exits first. */
  waitFor(pattern: RegExp, options?: { from?: number; timeoutMs?: number }): Promise<number>
}

/** Collects a child's stdout and stderr as lines, and waits for lines to appear. */
export function watchOutput(child: ChildProcess): WatchedOutput {
  const output: string[] = []
  const waiters = new Set<() => void>()
  const wakeAll = () => {
    for (const wake of waiters) wake()
  }
  for (const stream of [child.stdout, child.stderr]) {
    let partial = ''
    stream?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n')
      partial = lines.pop() ?? ''
      output.push(...lines)
      wakeAll()
    })
  }
  child.on('exit', wakeAll)
  const waitFor = (pattern: RegExp, { from = 0, timeoutMs = 30_000 } = {}) =>
    new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`timed out waiting for ${pattern}; output:\n${output.join('\n')}`)), timeoutMs)
      const check = () => {
        const index = output.findIndex((line, i) => i >= from && pattern.test(line))
        if (index >= 0) done(undefined, index)
        else if (child.exitCode !== null || child.signalCode !== null) done(new Error(`exited before ${pattern}; output:\n${output.join('\n')}`))
      }
      const done = (error?: Error, index?: number) => {
        clearTimeout(timer)
        waiters.delete(check)
        if (error) reject(error)
        else resolve(index as number)
      }
      waiters.add(check)
      check()
    })
  return { output, waitFor }
}
