/**
 * OpenTelemetry tracing, off unless the standard settings ask for it
 * (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER;
 * OTEL_SDK_DISABLED=true wins). server.ts imports this module first and the rest once it is done, so pg is
 * patched before it is loaded; when tracing is off none of OpenTelemetry is loaded at all.
 * The SDK reads the rest of the OTEL_* settings itself: OTEL_SERVICE_NAME (default here
 * `todos-api`), OTEL_TRACES_SAMPLER (`parentbased_traceidratio` with
 * OTEL_TRACES_SAMPLER_ARG=0.1 keeps a tenth), OTEL_EXPORTER_OTLP_PROTOCOL, headers.
 */
import type { Context, SpanContext } from '@opentelemetry/api'
import type { Tracing } from './lib/tracing.js'

export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED === 'true' || env.OTEL_TRACES_EXPORTER === 'none') return false
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_TRACES_EXPORTER)
}

async function startTracing(): Promise<Tracing> {
  const [{ NodeSDK }, { PgInstrumentation }, { FastifyOtelInstrumentation }, api] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/instrumentation-pg'),
    import('@fastify/otel'),
    import('@opentelemetry/api')
  ])
  const { context, trace, ROOT_CONTEXT, TraceFlags } = api
  // Request and handler spans; not one per hook (a dozen per request, all of them ours).
  // The path without its query string: filter values are the client's own words.
  const fastify = new FastifyOtelInstrumentation({ instrumentHooks: false, requestHook: (span, request) => span.setAttribute('url.path', request.url.split('?')[0] ?? '/') })
  // Traces only, unless the operator asks for the SDK's other exporters too.
  process.env.OTEL_METRICS_EXPORTER ??= 'none'
  process.env.OTEL_LOGS_EXPORTER ??= 'none'
  const sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME ?? 'todos-api',
    // A statement outside any request (migrations, reapers) is not traced on its own.
    instrumentations: [new PgInstrumentation({ requireParentSpan: true }), fastify]
  })
  sdk.start()
  const tracer = trace.getTracer('todos-api')
  return {
    plugin: fastify.plugin(),
    batches: {
      capture: () => context.active(),
      start(name, callers) {
        const contexts = callers as Context[]
        if (contexts.length === 1) return { run: (fn) => context.with(contexts[0] as Context, fn), end() {} }
        const spans = contexts.map((caller) => trace.getSpanContext(caller)).filter((span): span is SpanContext => span !== undefined)
        // A span of its own, in the trace of the first sampled request (so that a sampled
        // trace keeps its statement), linked to every request it serves.
        const first = spans.find((span) => (span.traceFlags & TraceFlags.SAMPLED) !== 0) ?? spans[0]
        const parent = first ? trace.setSpanContext(ROOT_CONTEXT, first) : ROOT_CONTEXT
        const span = tracer.startSpan(`batch ${name}`, { links: spans.map((caller) => ({ context: caller })), attributes: { 'todos_api.batch.size': callers.length } }, parent)
        const active = trace.setSpan(parent, span)
        return { run: (fn) => context.with(active, fn), end: () => span.end() }
      }
    },
    setUser(request, userId) {
      request.opentelemetry().span?.setAttribute('enduser.id', String(userId))
    },
    // Bounded: a collector that is down must not hold the exit past the shutdown grace.
    shutdown: () => Promise.race([sdk.shutdown(), new Promise<void>((resolve) => setTimeout(resolve, 2000).unref())])
  }
}

export const tracing = tracingRequested(process.env) ? await startTracing() : undefined
