import type { FastifyPluginAsync, FastifyPluginCallback, FastifyRequest } from 'fastify'

declare module 'fastify' {
  interface FastifyInstance {
    /** Tracing's part in batching, when tracing is on (plugins/tracing.ts). */
    batchTracer: BatchTracer | undefined
  }
}

/**
 * What tracing does around a statement that serves several requests (resources/engine/
 * batching.ts): tracing.ts implements it with OpenTelemetry when OTEL_* settings turn
 * tracing on; otherwise there is none and batching pays nothing.
 */
export interface BatchTracer {
  /** The current request's trace context, kept when the request joins a batch. */
  capture(): unknown
  /**
   * Where a batch runs: a caller alone, in its own context; several, in a span of their
   * own linked to each caller's span. `run` makes it current, `end` closes it once every
   * caller is answered.
   */
  start(name: string, callers: readonly unknown[]): { run<T>(fn: () => T): T; end(): void }
}

/** Tracing as otel.ts starts it: the Fastify instrumentation's plugin, the batches' part, and how to flush at exit. */
export interface Tracing {
  /** @fastify/otel's plugin: one span per request (route, method, status), continuing an incoming `traceparent`. */
  plugin: FastifyPluginAsync | FastifyPluginCallback
  batches: BatchTracer
  /** Sets the caller's user id on the current request's span. */
  setUser(request: FastifyRequest, userId: number): void
  shutdown(): Promise<void>
}
