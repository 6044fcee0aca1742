/**
 * docker/prometheus and docker/grafana, checked with Debian's promtool (installed by the
 * test setup): the scrape configuration and rules load, each alert fires on the series
 * that should fire it (alerts.test.yml), and every metric the rules and the dashboard name
 * is one the service exports.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { ROOT, buildTestApp } from '../helper.js'
import { PROGRAMS } from '../support/packages.js'

const run = promisify(execFile)
const dir = join(ROOT, 'docker/prometheus')
const promtool = (args: string[]) => run(PROGRAMS.promtool.path, args, { cwd: dir }).then(({ stdout, stderr }) => stdout + stderr)

t.test('promtool: the scrape configuration and the alerting rules are valid', async (t) => {
  t.match(await promtool(['check', 'config', 'prometheus.yml']), /SUCCESS: prometheus\.yml is valid/)
  t.match(await promtool(['check', 'rules', 'alerts.yml']), /SUCCESS: 6 rules found/)
})

t.test('promtool: each alert fires on the series that should fire it, and not on healthy ones', async (t) => {
  t.match(await promtool(['test', 'rules', 'alerts.test.yml']), /SUCCESS/)
  const tested = parse(await readFile(join(dir, 'alerts.test.yml'), 'utf8')) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts?: unknown[] }> }> }
  const rules = parse(await readFile(join(dir, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string }> }> }
  const fired = new Set(tested.tests.flatMap((test) => test.alert_rule_test.filter((check) => check.exp_alerts?.length).map((check) => check.alertname)))
  for (const { alert } of rules.groups.flatMap((group) => group.rules)) t.ok(fired.has(alert), `${alert} has a case where it fires`)
})

t.test('Prometheus finds every api replica by DNS, on the port the replicas serve metrics on', async (t) => {
  const config = parse(await readFile(join(dir, 'prometheus.yml'), 'utf8')) as { scrape_configs: Array<{ job_name: string; dns_sd_configs: Array<{ names: string[]; type: string; port: number }> }> }
  const [job] = config.scrape_configs
  t.equal(job?.job_name, 'todos-api', "the job the alerts' up{job=...} names")
  t.same(job?.dns_sd_configs[0]?.names, ['api'])
  t.equal(job?.dns_sd_configs[0]?.type, 'A')
  const { ConfigSchema } = await import('../../src/config.js')
  t.equal(job?.dns_sd_configs[0]?.port, ConfigSchema.properties.METRICS_PORT.default)
})

t.test('every metric the alerts and the dashboard use is one the service exports', async (t) => {
  const { app } = await buildTestApp(t, { env: { METRICS_PORT: '9999' } })
  const exported = new Set(['up'])
  for (const [, name, type] of (await app.metrics.registry.metrics()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exported.add(name as string)
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${name}${suffix}`)
  }
  const dashboard = JSON.parse(await readFile(join(ROOT, 'docker/grafana/todos-api.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> }
  const alerts = await readFile(join(dir, 'alerts.yml'), 'utf8')
  const expressions = [...dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr)), ...[...alerts.matchAll(/expr: \|?\s*([^\n]+(?:\n {10,}[^\n]+)*)/g)].map((match) => match[1] as string)]
  t.ok(expressions.length > 15)
  const FUNCTIONS = new Set(['sum', 'rate', 'increase', 'histogram_quantile', 'min', 'max', 'by', 'and', 'le', 'humanizePercentage'])
  const named = new Set(expressions.flatMap((expr) => [...expr.replace(/\{[^}]*\}|\[[^\]]*\]|"[^"]*"/g, ' ').matchAll(/[a-z_][a-z0-9_]*/g)].map((match) => match[0])))
  const labels = new Set(['http_route', 'db_client_connection_state', 'db_query_summary', 'resource', 'operation', 'instance', 'check', 'reason', 'code', 'http_response_status_code', 'outcome'])
  for (const name of named) {
    if (FUNCTIONS.has(name) || labels.has(name)) continue
    t.ok(exported.has(name), `${name} is exported`)
  }
  t.ok(named.has('http_server_request_duration_seconds_bucket') && named.has('db_client_connection_pending_requests'))
})
