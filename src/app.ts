import { createRequire } from 'node:module'
import fastifyEnv from '@fastify/env'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import authPlugin from './accounts/plugin.js'
import tokenRoutes from './accounts/token-routes.js'
import userRoutes from './accounts/user-routes.js'
import { ConfigSchema, type Config } from './config.js'
import { trustProxy } from './config-meaning.js'
import dbPlugin from './db/plugin.js'
import { loggerOptions } from './lib/logger.js'
import { requestIdFrom, traceIdFrom } from './lib/request-id.js'
import { SMALL_BODY_BYTES, httpValidatorCompiler } from './lib/validation.js'
import accessLogPlugin from './plugins/access-log.js'
import bodyParsingPlugin from './plugins/body-parsing.js'
import corsPlugin from './plugins/cors.js'
import docsPlugin from './plugins/docs.js'
import errorsPlugin from './plugins/errors.js'
import metricsPlugin from './plugins/metrics.js'
import httpGuardsPlugin, { clientErrorHandler, frameworkErrors } from './plugins/http-guards.js'
import loadSheddingPlugin from './plugins/load-shedding.js'
import readinessPlugin from './plugins/readiness.js'
import requestIdPlugin from './plugins/request-id.js'
import securityHeadersPlugin from './plugins/security-headers.js'
import serverTimingPlugin from './plugins/server-timing.js'
import tracingPlugin from './plugins/tracing.js'
import shutdownPlugin from './plugins/shutdown.js'
import type { Tracing } from './lib/tracing.js'
import type { AnyResource } from './resources/engine/define.js'
import resourcesPlugin from './resources/engine/plugin.js'
import { loadResources } from './resources/index.js'
import syncPlugin from './sync/plugin.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

const packageJson = createRequire(import.meta.url)('../package.json') as { name: string; version: string; description: string }

export interface BuildAppOptions {
  config: Config
  /** The resolved database (db/connect.ts); the app never starts one itself. */
  connectionString: string
  /** The direct connection migrations use (MIGRATION_DATABASE_URL), when requests go through a pooler: readiness checks it too. */
  migrationConnectionString?: string
  /** The resources to serve: every folder of src/resources by default (tests add fixtures). */
  resources?: readonly AnyResource[]
  /** The process logger (boot.ts); when absent one is built from config. */
  loggerInstance?: FastifyBaseLogger
  /** Overrides the logger built from config (tests pass `false`). */
  logger?: FastifyServerOptions['logger']
  /** OpenTelemetry, when otel.ts started it (boot.ts passes it on). */
  tracing?: Tracing | undefined
  /** Runs on the bare instance before any plugin: hooks it adds see every route (tests record answers). */
  beforePlugins?: (app: FastifyInstance) => void
}

/**
 * TRUST_PROXY as Fastify takes it. A number of proxies is a function of the hop: this
 * Fastify refuses a bare hop count (it trusts nothing then), since the nearest hop's
 * address is not checked; that is what a count means, for a service only its proxies reach.
 */
function fastifyTrustProxy(config: Config): boolean | string[] | ((address: string, hop: number) => boolean) {
  const trust = trustProxy(config) ?? false
  return typeof trust === 'number' ? (_address, hop) => hop < trust : trust
}

/**
 * Builds the service from its plugins without listening, so tests exercise exactly what
^ * `boot.ts` runs. The database must already be reachable and migrated. The plugins meet
 * only through decorators; the order is the order their hooks run in: the 503 of a
 * closing server first, then the HTTP guards (framing, Host), the headers, CORS.
 */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config } = options
  const app = Fastify({
    ...(options.loggerInstance ? { loggerInstance: options.loggerInstance } : { logger: options.logger ?? loggerOptions(config) }),
    trustProxy: fastifyTrustProxy(config),
    // The client's or the proxy's X-Request-Id when well-formed (lib/request-id.ts), so one
    // id follows a request from nginx to the logs; `request_id` in every line of it, and
    // the trace id of a valid `traceparent` too.
    genReqId: (request) => requestIdFrom(request.headers['x-request-id']),
    childLoggerFactory: (logger, bindings, options, request) => {
      const traceId = traceIdFrom(request.headers.traceparent)
      return logger.child(traceId === undefined ? bindings : { ...bindings, trace_id: traceId }, options)
    },
    // One access line per request instead (plugins/access-log.ts).
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    // The shutdown plugin answers requests that arrive during shutdown, as problem+json.
    return503OnClosing: false,
    // Small bodies by default (accounts, unknown routes, methods a path does not take): the
    // resource routes take more, past SMALL_BODY_BYTES only from a proven token.
    bodyLimit: SMALL_BODY_BYTES,
    routerOptions: { ignoreTrailingSlash: true },
    // A builder rather than setValidatorCompiler(): a plugin that adds shared schemas gets
    // its validator rebuilt from the builder, and would otherwise fall back to coercing
    // JSON bodies.
    schemaController: { compilersFactory: { buildValidator: (() => httpValidatorCompiler) as never } },
    // Time limits on the client side of the socket, so slow clients cannot hold it open:
    // the whole request within REQUEST_TIMEOUT_MS (Node enforces it only when
    // headersTimeout is no longer, and checks every connectionsCheckingInterval), and no
    // socket silent for longer than a minute.
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    connectionTimeout: 60_000,
    http: { headersTimeout: config.REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1000, requireHostHeader: false },
    // Every error answer is problem+json, also those written before a route is found.
    clientErrorHandler,
    frameworkErrors
  }).withTypeProvider<TypeBoxTypeProvider>()

  const resources = options.resources ?? (await loadResources())
  const info = { name: packageJson.name, version: packageJson.version, description: packageJson.description }
  const direct = options.migrationConnectionString !== options.connectionString ? options.migrationConnectionString : undefined

  options.beforePlugins?.(app)
  await app.register(fastifyEnv, { schema: ConfigSchema, data: config, env: false, dotenv: false })
  await app.register(metricsPlugin)
  await app.register(tracingPlugin, { tracing: options.tracing })
  await app.register(requestIdPlugin)
  await app.register(serverTimingPlugin)
  await app.register(bodyParsingPlugin)
  await app.register(errorsPlugin)
  await app.register(shutdownPlugin)
  await app.register(httpGuardsPlugin)
  await app.register(accessLogPlugin)
  await app.register(securityHeadersPlugin)
  await app.register(corsPlugin)
  await app.register(dbPlugin, { connectionString: options.connectionString })
  await app.register(readinessPlugin, { direct })
  await app.register(authPlugin)
  await app.register(docsPlugin, { info, resources })

  await app.register(userRoutes, { resources })
  await app.register(tokenRoutes)
  await app.register(resourcesPlugin, { resources })
  await app.register(syncPlugin, { resources, listenUrl: options.migrationConnectionString ?? options.connectionString })
  // Last: its first sample of the event loop's delay starts here, not with the work of building the app.
  await app.register(loadSheddingPlugin)
  return app
}
