/**
 * OpenTelemetry tracing, off unless the standard settings ask for it
 * (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER;
 * OTEL_SDK_DISABLED=true wins). server.ts imports this module first and the rest once it is done, so pg is
 * patched before it is loaded; when tracing is off none of OpenTelemetry is loaded at all.
 * The SDK reads the rest of the OTEL_* settings itself: OTEL_SERVICE_NAME (default here
 * `todos-api`), OTEL_TRACES_SAMPLER (`parentbased_traceidratio` with
 * OTEL_TRACES_SAMPLER_ARG=0.1 keeps a tenth), OTEL_EXPORTER_OTLP_PROTOCOL, headers.
 */
import type { SpanContext } from '@opentelemetry/api'
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
  const { context, trace, ROOT_CONTEXT } = api
  // Request and handler spans; not one per hook (a dozen per request, all of them ours).
  const fastify = new FastifyOtelInstrumentation({ instrumentHooks: false })
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
      capture: () => trace.getSpanContext(context.active()),
      start(name, callers) {
        const links = callers.filter((caller): caller is SpanContext => caller !== undefined).map((caller) => ({ context: caller }))
        // A span of its own, in the trace of the first request, linked to every request it serves.
        const parent = links[0] ? trace.setSpanContext(ROOT_CONTEXT, links[0].context) : ROOT_CONTEXT
        const span = tracer.startSpan(`batch ${name}`, { links, attributes: { 'todos_api.batch.size': callers.length } }, parent)
        const active = trace.setSpan(parent, span)
        return { run: (fn) => context.with(active, fn), end: () => span.end() }
      }
    },
    setUser(request, userId) {
      request.opentelemetry().span?.setAttribute('enduser.id', String(userId))
    },
    shutdown: () => sdk.shutdown()
  }
}

export const tracing = tracingRequested(process.env) ? await startTracing() : undefined
