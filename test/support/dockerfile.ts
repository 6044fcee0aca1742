export interface Instruction {
  keyword: string
  args: string
}

export interface Stage {
  name: string | undefined
  instructions: Instruction[]
  /** The shell commands of its RUN lines. */
  runs: string[]
  /** The exec-form CMD, joined with spaces. */
  cmd: string | undefined
}

/** Enough of a Dockerfile parser to check what the image does: stages, RUN, CMD. */
export function parseDockerfile(text: string): { stages: Stage[] } {
  const stages: Stage[] = []
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
  for (const line of logical) {
    const [keyword = '', ...rest] = line.split(/\s+/)
    const args = rest.join(' ')
    const upper = keyword.toUpperCase()
    if (upper === 'FROM') {
      stages.push({ name: /\sAS\s+(\S+)$/i.exec(line)?.[1], instructions: [], runs: [], cmd: undefined })
      continue
    }
    const stage = stages[stages.length - 1]
    if (!stage) continue
    stage.instructions.push({ keyword: upper, args })
    if (upper === 'RUN') stage.runs.push(args)
    if (upper === 'CMD') stage.cmd = (JSON.parse(args) as string[]).join(' ')
  }
  return { stages }
}
