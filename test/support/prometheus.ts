import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import { watchOutput } from './output.js'
import { freePort } from './ports.js'
import { tempDir } from './processes.js'

/** A sample of the Prometheus text format: its name, labels and value. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Every sample of a scrape (comments skipped). Label values here never hold `",` or `\"`. */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!match) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[pair[1] as string] = pair[2] as string
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) })
  }
  return samples
}

/** The sum of the samples named `name` whose labels include `labels`. */
export function sampleSum(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value)).reduce((sum, sample) => sum + sample.value, 0)
}

/** The real Prometheus (Debian's, installed by the test setup), scraping `targets` every second. */
export async function startPrometheus(t: Test, targets: string[]): Promise<{ url: string; query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> }> {
  const dir = await tempDir(t, 'todos-api-prometheus-')
  const port = await freePort()
  const config = join(dir, 'prometheus.yml')
  await writeFile(config, `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: todos-api\n    static_configs:\n      - targets: [${targets.map((target) => `'${target}'`).join(', ')}]\n`)
  const child = spawn('/usr/bin/prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] })
  const { waitFor } = watchOutput(child)
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  await waitFor(/Server is ready to receive web requests/, { timeoutMs: 90_000 })
  const url = `http://127.0.0.1:${port}`
  return {
    url,
    async query(promql: string) {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`)
      const body = (await response.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }
      if (body.status !== 'success') throw new Error(`PromQL failed: ${JSON.stringify(body)}`)
      return body.data.result
    }
  }
}
