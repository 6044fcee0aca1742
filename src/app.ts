import { createRequire } from 'node:module'
import fastifyEnv from '@fastify/env'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { ConfigSchema, trustProxy, type Config } from './config.js'
import crudPlugin from './crud/plugin.js'
import { SMALL_BODY_BYTES, httpValidatorCompiler, registerBodyParsers } from './lib/validation.js'
import { loggerOptions } from './logger.js'
import accessLogPlugin from './plugins/access-log.js'
import authPlugin from './plugins/auth.js'
import corsPlugin from './plugins/cors.js'
import dbPlugin from './plugins/db.js'
import docsPlugin from './plugins/docs.js'
import errorsPlugin from './plugins/errors.js'
import idempotencyPlugin from './plugins/idempotency.js'
import lifecyclePlugin from './plugins/lifecycle.js'
import securityPlugin from './plugins/security.js'
import httpGuardsPlugin, { clientErrorHandler, frameworkErrors } from './plugins/http-guards.js'
import accountRoutes from './routes/accounts.js'
import healthRoutes from './routes/health.js'
import { RESOURCES } from './routes/resources.js'
import rootRoutes from './routes/root.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

const packageJson = createRequire(import.meta.url)('../package.json') as { name: string; version: string; description: string }

export interface BuildAppOptions {
  config: Config
  /** The resolved database (see db/connect.ts); the app never starts one itself. */
  connectionString: string
  /** The direct connection migrations use (MIGRATION_DATABASE_URL), when requests go through a pooler: readiness checks it too. */
  migrationConnectionString?: string
  /** The process logger (server.ts); when absent one is built from config. */
  loggerInstance?: FastifyBaseLogger
  /** Overrides the logger built from config (tests pass `false`). */
  logger?: FastifyServerOptions['logger']
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
 * `server.ts` runs. The database must already be reachable and migrated. The order is the
 * order their hooks run in: the 503 of a closing server first, then the Host check and
 * headers, then CORS.
 */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config } = options
  const app = Fastify({
    ...(options.loggerInstance ? { loggerInstance: options.loggerInstance } : { logger: options.logger ?? loggerOptions(config) }),
    trustProxy: fastifyTrustProxy(config),
    // One access line per request instead (plugins/access-log.ts).
    logController: new LogController({ disableRequestLogging: true }),
    // The lifecycle plugin answers requests that arrive during shutdown, as problem+json.
    return503OnClosing: false,
    // Small bodies by default (accounts, unknown routes, methods a path does not take):
    // anyone may send those, and any JSON of at most this size parses in well under a
    // millisecond. The resource routes take 1 MiB, past 16 KiB only from a proven token.
    bodyLimit: SMALL_BODY_BYTES,
    routerOptions: { ignoreTrailingSlash: true },
    // A builder rather than setValidatorCompiler(): a plugin that adds shared schemas gets
    // its validator rebuilt from the builder, and would otherwise fall back to coercing
    // JSON bodies.
    schemaController: { compilersFactory: { buildValidator: (() => httpValidatorCompiler) as never } },
    // Time limits on the client side of the socket, so slow clients cannot hold it open:
    // the whole request within REQUEST_TIMEOUT_MS, and no socket silent for longer than a
    // minute. Node enforces requestTimeout only when headersTimeout is no longer (its
    // default is 60 s: a trickled body ran for minutes), and checks every
    // connectionsCheckingInterval (default 30 s; here every second).
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    connectionTimeout: 60_000,
    http: { headersTimeout: config.REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1000, requireHostHeader: false },
    // Every error answer is problem+json, also those written before a route is found.
    clientErrorHandler,
    frameworkErrors
  }).withTypeProvider<TypeBoxTypeProvider>()

  options.beforePlugins?.(app)
  registerBodyParsers(app)
  await app.register(fastifyEnv, { schema: ConfigSchema, data: config, env: false, dotenv: false })
  await app.register(errorsPlugin)
  await app.register(httpGuardsPlugin)
  await app.register(accessLogPlugin)
  await app.register(lifecyclePlugin, {
    direct: options.migrationConnectionString !== options.connectionString ? options.migrationConnectionString : undefined
  })
  await app.register(securityPlugin)
  await app.register(corsPlugin)
  await app.register(dbPlugin, { connectionString: options.connectionString })
  await app.register(authPlugin)
  await app.register(idempotencyPlugin)
  await app.register(docsPlugin, { version: packageJson.version, resources: RESOURCES })

  await app.register(rootRoutes, { info: { name: packageJson.name, version: packageJson.version, description: packageJson.description }, resources: RESOURCES })
  await app.register(healthRoutes)
  await app.register(accountRoutes)
  for (const resource of RESOURCES) await app.register(crudPlugin, { prefix: resource.path, resource })

  return app
}
