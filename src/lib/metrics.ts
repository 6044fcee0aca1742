import type { FastifyReply } from 'fastify'
import { Counter, Gauge, Registry } from 'prom-client'
import { LabelledHistogram, type Series } from './histogram.js'
import { SHED_REASONS, type HttpProblem } from './problem.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The app's instruments and their registry (plugins/metrics.ts registers it first). */
    metrics: Metrics
  }
}

/** Seconds; OpenTelemetry's advice for HTTP server durations, which Grafana's panels expect. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
const DB_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128]

/** What the pool tells about itself when scraped (db/plugin.ts sets it). */
export interface PoolState {
  totalCount: number
  idleCount: number
  waitingCount: number
  max: number
}

/**
 * Every instrument of the service, on a registry of the app's own (a test process builds
 * many apps). Names and labels follow OpenTelemetry's semantic conventions as Prometheus
 * spells them where one exists (http_server_*, db_client_*); the rest are todos_api_*.
 * Every label takes values from a small fixed set: a route pattern, a status, a code, a
 * statement summary, never anything a client wrote.
 */
export function createMetrics() {
  const registry = new Registry()
  const registers = [registry]
  const histogram = (name: string, help: string, labelNames: string[], buckets: number[]) => {
    const metric = new LabelledHistogram(name, help, labelNames, buckets)
    registry.registerMetric(metric as never)
    return metric
  }

  let active = 0
  let pool: PoolState | undefined
  const readiness = new Map<string, boolean>()

  const metrics = {
    registry,
    httpDuration: histogram('http_server_request_duration_seconds', 'Duration of HTTP server requests', ['http_request_method', 'http_route', 'http_response_status_code'], HTTP_BUCKETS),
    requestStarted: () => void active++,
    requestEnded: () => void active--,
    /** Counts a request's answer in the HTTP figures (plugins/metrics.ts sets it when they are on). */
    track: (_reply: FastifyReply): void => {},
    statementDuration: histogram('db_client_operation_duration_seconds', 'Duration of database statements, by statement', ['db_system_name', 'db_query_summary'], DB_BUCKETS),
    batchSize: histogram('todos_api_batch_size', 'Requests served by one statement of the per-turn batching', ['resource', 'operation'], BATCH_BUCKETS),
    statementCancels: new Counter({ name: 'db_client_statement_cancels_total', help: 'Statements cancelled after DATABASE_STATEMENT_TIMEOUT_MS', registers }),
    statementTimeouts: new Counter({ name: 'db_client_statement_timeouts_total', help: 'Statements PostgreSQL ended as cancelled (57014)', registers }),
    connectionsCut: new Counter({ name: 'db_client_connections_cut_total', help: 'Pooled connections destroyed while in use, by reason', labelNames: ['reason'], registers }),
    connectionTimeouts: new Counter({ name: 'db_client_connection_timeouts_total', help: 'Waits for a pool connection that failed (timed out or refused)', registers }),
    authFailures: new Counter({ name: 'todos_api_auth_failures_total', help: 'Requests refused as not authenticated (401) or not allowed without a token (403), by reason', labelNames: ['reason'], registers }),
    rateLimited: new Counter({ name: 'todos_api_rate_limited_total', help: 'Requests refused with 429', labelNames: ['http_route'], registers }),
    idempotency: new Counter({ name: 'todos_api_idempotency_requests_total', help: 'Creates with an Idempotency-Key, by outcome', labelNames: ['outcome'], registers }),
    unavailable: new Counter({ name: 'todos_api_unavailable_responses_total', help: '503 and 504 answers, by status and code', labelNames: ['http_response_status_code', 'code'], registers }),
    shed: new Counter({ name: 'todos_api_shed_total', help: 'Requests answered 503 OVERLOADED, by the limit that shed them', labelNames: ['reason'], registers }),
    /** The counters an error answer belongs to (plugins/errors.ts calls it for each). */
    countProblem(problem: HttpProblem, route: string | undefined) {
      const { status, code } = problem
      if (status === 401 || code === 'LOCAL_HOST_ONLY') metrics.authFailures.inc({ reason: problem.reason ?? code.toLowerCase() })
      else if (status === 429) metrics.rateLimited.inc({ http_route: route ?? 'unmatched' })
      else if (status === 503 || status === 504) metrics.unavailable.inc({ http_response_status_code: String(status), code })
      if (code === 'OVERLOADED') metrics.shed.inc({ reason: problem.reason ?? 'unknown' })
      if (code === 'IDEMPOTENCY_KEY_IN_USE') metrics.idempotency.inc({ outcome: 'in_use' })
      else if (code === 'IDEMPOTENCY_KEY_REUSED') metrics.idempotency.inc({ outcome: 'reused' })
    },
    /** db/plugin.ts hands over the pool once it exists. */
    observePool: (state: PoolState) => void (pool = state),
    /** Each readiness check's last outcome (plugins/readiness.ts). */
    setReadiness: (check: string, ok: boolean) => void readiness.set(check, ok)
  }

  new Gauge({ name: 'http_server_active_requests', help: 'HTTP requests received and not yet answered', registers, collect() { this.set(active) } })
  new Gauge({
    name: 'db_client_connection_count',
    help: 'Pool connections, by state',
    labelNames: ['db_client_connection_state'],
    registers,
    collect() {
      if (pool === undefined) return
      this.set({ db_client_connection_state: 'idle' }, pool.idleCount)
      this.set({ db_client_connection_state: 'used' }, pool.totalCount - pool.idleCount)
    }
  })
  new Gauge({ name: 'db_client_connection_max', help: 'The most connections the pool opens (DATABASE_POOL_MAX)', registers, collect() { if (pool) this.set(pool.max) } })
  new Gauge({ name: 'db_client_connection_pending_requests', help: 'Statements waiting for a pool connection', registers, collect() { if (pool) this.set(pool.waitingCount) } })
  new Gauge({
    name: 'todos_api_readiness_check',
    help: 'Each readiness check: 1 passing, 0 failing (as of the last probe); over workers, the lowest',
    labelNames: ['check'],
    aggregator: 'min',
    registers,
    collect() {
      for (const [check, ok] of readiness) this.set({ check }, ok ? 1 : 0)
    }
  })
  // Each reason's series from the start, at 0, so that rate() sees the first shed request too.
  for (const reason of SHED_REASONS) metrics.shed.inc({ reason }, 0)
  return metrics
}

export type Metrics = ReturnType<typeof createMetrics>
export type { Series }
