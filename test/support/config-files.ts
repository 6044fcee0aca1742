/**
 * The shipped configuration files (docker/), as the tests run them: the same text, with
 * only the lines naming ports, hosts and paths replaced. Each replacement must match
 * exactly once, so a renamed setting fails the test instead of going unnoticed.
 */
export function replaceLines(text: string, replacements: Array<[RegExp, string]>): string {
  let result = text
  for (const [pattern, replacement] of replacements) {
    const flags = pattern.flags.includes('m') ? pattern.flags : `${pattern.flags}m`
    const global = new RegExp(pattern.source, flags.includes('g') ? flags : `${flags}g`)
    const count = [...result.matchAll(global)].length
    if (count !== 1) throw new Error(`expected one line matching ${pattern} in the configuration file, found ${count}`)
    result = result.replace(new RegExp(pattern.source, flags.replace('g', '')), replacement)
  }
  return result
}

/** `key = value` settings of an ini file (PgBouncer's), by section, comments dropped. */
export function parseIni(text: string): Record<string, Record<string, string>> {
  const sections: Record<string, Record<string, string>> = {}
  let current = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header) {
      current = header[1] as string
      sections[current] ??= {}
      continue
    }
    const eq = line.indexOf('=')
    if (eq < 0) continue
    ;(sections[current] ??= {})[line.slice(0, eq).trim()] = line.slice(eq + 1).trim()
  }
  return sections
}
