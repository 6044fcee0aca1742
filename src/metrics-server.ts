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
  const waiting = new Map<number, Map<number, (metrics: Metrics | undefined) => void>>()
  const last = new Map<number, Metrics>()
  /** What exited workers left: their counters and histograms, summed at the next scrape. */
  let retired: Metrics[] = []
  const exited = new Set<number>()

  cluster.on('message', (worker: Worker, message: { type?: string; requestId?: number; metrics?: Metrics[]; error?: unknown }) => {
    if (message?.type !== RESPONSE || message.requestId === undefined) return
    // A worker whose collection failed answers with an error: its previous answer stands.
    waiting.get(message.requestId)?.get(worker.id)?.(message.error === undefined ? (message.metrics?.flat() ?? []) : undefined)
  })
  cluster.on('exit', (worker: Worker) => {
    exited.add(worker.id)
    const final = last.get(worker.id)
    last.delete(worker.id)
    if (final !== undefined) retired.push(final.filter((metric) => ['counter', 'histogram'].includes(String(metric.type))))
  })

  const ask = (worker: Worker, requestId: number, answers: Map<number, (metrics: Metrics | undefined) => void>) =>
    new Promise<Metrics | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(last.get(worker.id)), WORKER_WAIT_MS)
      answers.set(worker.id, (metrics) => {
        clearTimeout(timer)
        if (metrics !== undefined) last.set(worker.id, metrics)
        resolve(last.get(worker.id))
      })
      worker.send({ type: REQUEST, requestId }, (error: Error | null) => error && resolve(last.get(worker.id)))
    })

  return async () => {
    const requestId = ++sequence
    const answers = new Map<number, (metrics: Metrics | undefined) => void>()
    waiting.set(requestId, answers)
    try {
      const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined && worker.isConnected())
      const replies = await Promise.all(workers.map(async (worker) => ({ id: worker.id, metrics: await ask(worker, requestId, answers) })))
      // A worker that exited while this scrape waited is in `retired` now: counted once.
      const live = replies.filter((reply) => reply.metrics !== undefined && !exited.has(reply.id)).map((reply) => reply.metrics as Metrics)
      // The exited workers' figures, kept as one sum however many have come and gone.
      if (retired.length > 1) retired = [(await AggregatorRegistry.aggregate(retired).getMetricsAsJSON()) as Metrics]
      return await AggregatorRegistry.aggregate([...live, ...retired]).metrics()
    } finally {
      waiting.delete(requestId)
    }
  }
}
