/**
 * The service's entry (`node dist/server.js`). OpenTelemetry, when OTEL_* settings turn it
 * on, must patch pg before anything loads it: otel.ts finishes first, and only then is
 * the rest imported (a static import would be evaluated beside otel.ts's top-level await).
 */
import './otel.js'

await import('./boot.js')
