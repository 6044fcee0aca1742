/**
 * The README is part of the interface: its curl examples must work as written, and its
 * tables must name every make target and every setting.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { ConfigSchema } from '../../src/config.js'
import { ROOT, freePort, freshDatabase, startServer } from '../helper.js'

const sh = promisify(execFile)
const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
const makefile = await readFile(join(ROOT, 'Makefile'), 'utf8')

t.test('the two commands come first', async (t) => {
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
  t.match(firstBlock, /^make dev\b.*\nmake test\b/m)
})

t.test('every make target is in the README', async (t) => {
  const targets = [...makefile.matchAll(/^([a-z-]+):.*##/gm)].map((match) => match[1])
  t.ok(targets.length > 10)
  for (const target of targets) t.match(readme, `\`make ${target}`, `make ${target}`)
})

t.test('every setting is in the README', async (t) => {
  for (const name of Object.keys(ConfigSchema.properties)) t.match(readme, `| \`${name}\` |`, name)
  t.match(readme, '| `OTEL_*` |', "and OpenTelemetry's, which its SDK reads")
})

interface Example {
  command: string
  /** `TOKEN=$(curl …)`: the variable the command's output is kept in, for the lines after it. */
  assigns?: string
  /** What the README says it answers with, after its `#`. */
  comment: string
  expected?: number
}

/** The curl lines of the README, continuation lines joined, with their annotation. */
function curlExamples(): Example[] {
  const examples: Example[] = []
  for (const [, block = ''] of readme.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of block.replace(/\\\n\s*/g, ' ').split('\n')) {
      const assignment = /^([A-Z_]+)=\$\((curl .*)\)$/.exec(line)
      if (assignment) {
        examples.push({ command: assignment[2] as string, comment: '', assigns: assignment[1] as string })
        continue
      }
      if (!line.startsWith('curl ')) continue
      const [command = '', comment = ''] = line.split(/\s+#\s+/)
      const expected = /^(\d{3})\b/.exec(comment)?.[1]
      examples.push(expected ? { command, comment, expected: Number(expected) } : { command, comment })
    }
  }
  return examples
}

/** Splits `curl -si` output into headers (lower-case names) and body. */
function parseResponse(output: string): { headers: Record<string, string>; body: string } {
  const [head = '', ...rest] = output.split(/\r?\n\r?\n/)
  const hasHead = /^HTTP\/[\d.]+ \d{3}/.test(head)
  const headers: Record<string, string> = {}
  if (hasHead) for (const line of head.split(/\r?\n/).slice(1)) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim()
  return { headers, body: hasHead ? rest.join('\n\n') : output }
}

t.test('the curl examples work as written and answer what the README says', async (t) => {
  const examples = curlExamples()
  t.ok(examples.length >= 10, `${examples.length} examples`)
  const db = await freshDatabase(t)
  // As `make dev` runs it: demo data on an empty database.
  const metricsPort = await freePort()
  const server = await startServer(t, { DATABASE_URL: db, SEED_ON_START: 'if-empty', METRICS_PORT: String(metricsPort) })
  await server.waitFor(/Server listening/)
  const variables: Record<string, string> = {}
  for (const { command, comment, expected, assigns } of examples) {
    const local = command.replaceAll('localhost:3000', `127.0.0.1:${server.port}`).replaceAll('localhost:9464', `127.0.0.1:${metricsPort}`)
    const env = { ...process.env, ...variables }
    if (assigns) {
      variables[assigns] = (await sh('/bin/sh', ['-c', local], { env })).stdout.trim()
      t.ok(variables[assigns], `${assigns}=$(${command}) gave a value`)
      continue
    }
    const { stdout } = await sh('/bin/sh', ['-c', `${local} -w '\\n%{http_code}'`], { env })
    const lines = stdout.trimEnd().split('\n')
    const status = Number(lines.pop())
    const { headers, body } = parseResponse(lines.join('\n'))
    if (expected) t.equal(status, expected, command)
    else t.ok(status >= 200 && status < 300, `${status}: ${command}`)
    // Headers the annotation shows: `Location: …/todos/301`, `ETag: "2"`, `X-Total-Count`.
    const location = /Location: …(\S+)/.exec(comment)?.[1]
    if (location) t.match(headers.location, new RegExp(`${location.replace(/[/.]/g, '\\$&')}$`), `${command}: Location …${location}`)
    const etag = /ETag: ("\d+")/.exec(comment)?.[1]
    if (etag) t.equal(headers.etag, etag, `${command}: ETag ${etag}`)
    if (/X-Total-Count/.test(comment)) t.match(lines.join('\n'), /X-Total-Count: [1-9]\d*/i, `${command}: a count`)
    if (/due soonest/.test(comment)) {
      const due = (JSON.parse(body) as Array<{ due_date: string | null; completed: boolean }>).map((todo) => todo.due_date)
      t.equal(due.length, 5)
      t.ok(due.every((date) => date !== null), 'no undated todo among those due soonest')
      t.same([...due].sort(), due, 'earliest first')
    }
    if (/Ada's todos only/.test(comment)) t.match(JSON.parse(body), [{ title: 'Ada’s first todo' }], "her one todo, none of the local user's demo data")
    if (/without the secrets/.test(comment)) t.notMatch(body, /"token"/, 'no token in the list')
    if (/request durations by route/.test(comment)) t.match(body, /^http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/todos",http_response_status_code="200"\} [1-9]/m, 'the requests the examples made')
    if (/a subtask in list 5/.test(comment)) t.match(JSON.parse(body), { parent_id: 302, list_id: 5, metadata: { bed: 'north' } }, "the parent's list")
    if (/most urgent first/.test(comment)) t.same((JSON.parse(body) as Array<{ priority: number }>).map((todo) => todo.priority), [4, 3])
    if (/completed_at set/.test(comment)) t.match(JSON.parse(body), { completed: true, completed_at: /^\d{4}-/ })
    if (/LIST_NOT_FOUND/.test(comment)) t.match(JSON.parse(body), { code: 'LIST_NOT_FOUND' })
    if (/only todo 2, as it is now/.test(comment)) t.match(JSON.parse(body), { changes: [{ type: 'todo', id: 2, deleted: false, data: { title: 'Changed on the laptop' } }], more: false }, 'the one change since the cursor')
    if (/only todo 2, as it is now/.test(comment)) t.equal((JSON.parse(body) as { changes: unknown[] }).changes.length, 1)
    if (/catty first/.test(comment)) t.match(JSON.parse(body), [{ name: 'catty mcCatFace', price: 5000 }], 'the cat just created is found')
  }
})
