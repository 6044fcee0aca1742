import t from 'tap'
import { buildTestApp } from '../helper.js'
import { parseSamples, sampleSum } from '../support/prometheus.js'

const parse = (header: unknown) => {
  const match = /^db;dur=(\d+\.\d), total;dur=(\d+\.\d)$/.exec(String(header))
  return match ? { db: Number(match[1]), total: Number(match[2]) } : undefined
}

t.test('SERVER_TIMING=true: each answer says how long its statements and the whole request took', async (t) => {
  const { app, api } = await buildTestApp(t, { env: { SERVER_TIMING: 'true', METRICS_PORT: '9999', DATABASE_BATCHING: 'true' } })
  const todo = await api.create('/todos', { title: 'timed' })
  const one = parse((await api.get(`/todos/${todo.id}`)).headers['server-timing'])
  t.ok(one && one.db > 0 && one.total >= one.db, `a lookup: ${JSON.stringify(one)}`)
  const live = parse((await api.get('/health/live')).headers['server-timing'])
  t.equal(live?.db, 0, 'no statement, no database time')
  const missing = parse((await api.get('/no/such/path')).headers['server-timing'])
  t.ok(missing, 'error answers too')

  // Lookups of one turn share one statement: each is credited the statement's time.
  const answers = await Promise.all(Array.from({ length: 8 }, () => api.get(`/todos/${todo.id}`)))
  const samples = parseSamples(await app.metrics.registry.metrics())
  t.ok(sampleSum(samples, 'todos_api_batch_size_sum', { operation: 'read' }) > sampleSum(samples, 'todos_api_batch_size_count', { operation: 'read' }), 'some lookups were batched')
  for (const answer of answers) {
    const timing = parse(answer.headers['server-timing'])
    t.ok(timing && timing.db > 0 && timing.total >= timing.db, `a batched lookup: ${JSON.stringify(timing)}`)
  }
})

t.test('off by default: no Server-Timing header', async (t) => {
  const { api } = await buildTestApp(t)
  const todo = await api.create('/todos', { title: 'untimed' })
  t.notOk((await api.get(`/todos/${todo.id}`)).headers['server-timing'])
})
