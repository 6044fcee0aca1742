import cluster from 'node:cluster'
import type { ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import { AggregatorRegistry, collectDefaultMetrics } from 'prom-client'
import { createMetrics, type Series } from '../lib/metrics.js'

const kReply = Symbol('the reply this response belongs to')
const kTracked = Symbol('counted once')
type Tracked = ServerResponse & { [kReply]?: FastifyReply; [kTracked]?: true }

/** What the answer of a request is counted as when its client left before it was sent (nginx's code). */
const CLIENT_CLOSED = 499

/** Methods with a name of their own in the label; any other is `_OTHER` (OpenTelemetry's rule). */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'])

/**
 * `app.metrics`, first of all plugins so the others can count; with METRICS_PORT set (the
 * operators' listener, which boot.ts and primary.ts open), also each request's duration
 * by route pattern and status, the requests in flight and the process's own figures.
 * With METRICS_PORT=0 nobody can read them, and requests pay nothing.
 */
async function metricsPlugin(app: FastifyInstance) {
  const metrics = createMetrics()
  app.decorate('metrics', metrics)
  if (app.config.METRICS_PORT === 0) return

  collectDefaultMetrics({ register: metrics.registry })
  if (cluster.isWorker) {
    // The primary asks each worker for its figures and sums them (metrics-server.ts).
    AggregatorRegistry.setRegistries([metrics.registry])
    new AggregatorRegistry()
  }

  // The series of each method, route and status, found once: an observation is then three
  // lookups (no key to build) and the histogram's own additions.
  const series = new Map<string, Map<string, Series[]>>()
  const seriesFor = (method: string, route: string, status: number): Series => {
    let byRoute = series.get(method)
    if (byRoute === undefined) series.set(method, (byRoute = new Map()))
    let byStatus = byRoute.get(route)
    if (byStatus === undefined) byRoute.set(route, (byStatus = []))
    return (byStatus[status] ??= metrics.httpDuration.child(method, route, String(status)))
  }

  // 'close' comes for every response, sent or not (Fastify's onResponse does not run when
  // the client left first), so the count of requests in flight cannot drift.
  function finished(this: Tracked) {
    const reply = this[kReply]
    if (reply === undefined) return
    this[kReply] = undefined
    metrics.requestEnded()
    const { request } = reply
    const method = KNOWN_METHODS.has(request.method) ? request.method : '_OTHER'
    const status = this.writableEnded ? this.statusCode : CLIENT_CLOSED
    seriesFor(method, request.routeOptions.url ?? 'unmatched', status).observe(reply.elapsedTime / 1000)
  }
  // From the first hook; or, for an answer the router writes before any hook runs (a 400
  // for a malformed URL, a 414), from sendProblem (plugins/errors.ts). Once per response,
  // and never for one already closed, whose 'close' would not come again.
  const track = (reply: FastifyReply) => {
    const response = reply.raw as Tracked
    if (response[kTracked] || response.closed) return
    response[kTracked] = true
    metrics.requestStarted()
    response[kReply] = reply
    response.once('close', finished)
  }
  metrics.track = track
  app.addHook('onRequest', (_request, reply, done) => {
    track(reply)
    done()
  })
}

export default fp(metricsPlugin, { name: 'metrics', fastify: '5.x', dependencies: ['@fastify/env'] })
