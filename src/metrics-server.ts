import cluster, { type Worker } from 'node:cluster'
import { createServer, type Server } from 'node:http'
import { AggregatorRegistry, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client'
import type { Config } from './config.js'
import { errorLine, type Logger } from './lib/logger.js'

/** The text of one scrape. */
export type MetricsSource = () => Promise<string>

/**
 * The operators' listener (METRICS_HOST:METRICS_PORT): `GET /metrics` in Prometheus' text
 * format, nothing else. Apart from the API's port, so no client of the API can read it;
 * bind it to an address only Prometheus reaches.
 */
export async function serveMetrics(config: Config, logger: Logger, source: MetricsSource): Promise<{ close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0]
    if (path !== '/metrics') return void response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n')
    if (request.method !== 'GET' && request.method !== 'HEAD') return void response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end()
    source().then(
      (text) => response.writeHead(200, { 'content-type': Registry.PROMETHEUS_CONTENT_TYPE, 'cache-control': 'no-store' }).end(request.method === 'HEAD' ? undefined : text),
      (error: unknown) => {
        logger.error({ reason: errorLine(error) }, 'collecting metrics failed')
        response.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed; see the log\n')
      }
    )
  })
  // Scrapes are short and few; a client that holds a connection open gets nothing for it.
  server.requestTimeout = 10_000
  server.keepAliveTimeout = 65_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: config.METRICS_HOST, port: config.METRICS_PORT }, () => resolve())
  })
  logger.info({ url: `http://${config.METRICS_HOST}:${config.METRICS_PORT}/metrics` }, 'metrics listening')
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
}

// prom-client's own protocol: its AggregatorRegistry answers these in each worker
// (plugins/metrics.ts). The primary must not construct one: its listener would take our
// answers for requests of its own.
const REQUEST = 'prom-client:getMetricsReq'
const RESPONSE = 'prom-client:getMetricsRes'
/** How long a scrape waits for a worker before it uses that worker's previous answer. */
const WORKER_WAIT_MS = 2000

type Metrics = Array<MetricObjectWithValues<MetricValue<string>>>

/**
 * The primary's source with WEB_CONCURRENCY > 1: every worker's figures, summed. A
 * worker that does not answer in time counts with its last answer. A worker that died
 * leaves its counters and histograms behind, added to every later scrape, so the sums
 * never go down while the primary lives (Prometheus' rate() would read a drop as a
 * restart and count the whole sum again); only what it counted since the last scrape is
 * lost. Its gauges go with it.
 */
export function clusterMetrics(): MetricsSource {
  let sequence = 0
  const waiting = new Map<number, Map<number, (metrics: Metrics) => void>>()
  const last = new Map<number, Metrics>()
  let retired: Metrics = []

  cluster.on('message', (worker: Worker, message: { type?: string; requestId?: number; metrics?: Metrics[] }) => {
    if (message?.type !== RESPONSE || message.requestId === undefined) return
    waiting.get(message.requestId)?.get(worker.id)?.(message.metrics?.flat() ?? [])
  })
  cluster.on('exit', (worker: Worker) => {
    const final = last.get(worker.id)
    last.delete(worker.id)
    if (final === undefined) return
    const kept = final.filter((metric) => ['counter', 'histogram'].includes(String(metric.type)))
    void AggregatorRegistry.aggregate([retired, kept])
      .getMetricsAsJSON()
      .then((sum) => (retired = sum as Metrics))
  })

  const ask = (worker: Worker, requestId: number, answers: Map<number, (metrics: Metrics) => void>) =>
    new Promise<Metrics | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(last.get(worker.id)), WORKER_WAIT_MS)
      answers.set(worker.id, (metrics) => {
        clearTimeout(timer)
        last.set(worker.id, metrics)
        resolve(metrics)
      })
      worker.send({ type: REQUEST, requestId }, (error: Error | null) => error && resolve(last.get(worker.id)))
    })

  return async () => {
    const requestId = ++sequence
    const answers = new Map<number, (metrics: Metrics) => void>()
    waiting.set(requestId, answers)
    try {
      const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && worker.isConnected())
      const replies = await Promise.all(workers.map((worker) => ask(worker, requestId, answers)))
      const all = [...replies.filter((reply): reply is Metrics => reply !== undefined), retired]
      return AggregatorRegistry.aggregate(all).metrics()
    } finally {
      waiting.delete(requestId)
    }
  }
}
