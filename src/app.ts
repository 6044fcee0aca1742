import { createRequire } from 'node:module'
import fastifyEnv from '@fastify/env'
import fastifyHelmet from '@fastify/helmet'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { ConfigSchema, type Config } from './config.js'
import { HttpProblem } from './lib/problem.js'
import { loggerOptions } from './logger.js'
import { checkHost } from './lib/urls.js'
import { httpValidatorCompiler, registerBodyParsers } from './lib/validation.js'
import corsPlugin from './plugins/cors.js'
import dbPlugin from './plugins/db.js'
import docsPlugin from './plugins/docs.js'
import errorsPlugin from './plugins/errors.js'
import healthRoutes from './routes/health.js'
import rootRoutes from './routes/root.js'
import catsRoutes from './routes/cats/index.js'
import todosRoutes from './routes/todos/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    /**
     * `shuttingDown`: a signal arrived; readiness answers 503 so load balancers stop
     * sending traffic. `closing`: the server is closing; every new request answers 503.
     */
    lifecycle: { shuttingDown: boolean; closing: boolean }
  }
}

const packageJson = createRequire(import.meta.url)('../package.json') as { name: string; version: string; description: string }

export interface BuildAppOptions {
  config: Config
  /** The resolved database (see db/target.ts); the app never starts one itself. */
  connectionString: string
  /** The process logger (server.ts); when absent one is built from config. */
  loggerInstance?: FastifyBaseLogger
  /** Overrides the logger built from config (tests pass `false`). */
  logger?: FastifyServerOptions['logger']
}

export const RESOURCES = [
  { path: '/todos', description: 'Todos: list, create, read, update, delete' },
  { path: '/cats', description: 'Cats: list, create, read, update, delete' }
]

/**
 * Builds the service from its plugins without listening, so tests exercise exactly what
 * `server.ts` runs. The database must already be reachable and migrated.
 */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config } = options
  const app = Fastify({
    ...(options.loggerInstance ? { loggerInstance: options.loggerInstance } : { logger: options.logger ?? loggerOptions(config) }),
    trustProxy: config.TRUST_PROXY,
    // Our own hook answers requests that arrive during shutdown, as problem+json.
    return503OnClosing: false,
    routerOptions: { ignoreTrailingSlash: true },
    // A builder rather than setValidatorCompiler(): a plugin that adds shared schemas gets
    // its validator rebuilt from the builder, and would otherwise fall back to coercing
    // JSON bodies.
    schemaController: { compilersFactory: { buildValidator: (() => httpValidatorCompiler) as never } },
    // Time limits on the client side of the socket, so slow clients cannot hold it open.
    requestTimeout: 30_000,
    connectionTimeout: 60_000
  }).withTypeProvider<TypeBoxTypeProvider>()

  registerBodyParsers(app)

  await app.register(fastifyEnv, { schema: ConfigSchema, data: config, env: false, dotenv: false })

  app.decorate('lifecycle', { shuttingDown: false, closing: false })
  app.addHook('preClose', async () => {
    app.lifecycle.shuttingDown = true
    app.lifecycle.closing = true
  })

  await app.register(errorsPlugin)
  app.addHook('onRequest', async (request) => {
    if (app.lifecycle.closing) {
      throw new HttpProblem(503, 'SHUTTING_DOWN', 'the service is shutting down; retry on another instance', { retryAfterSeconds: 5 })
    }
    checkHost(request, config)
  })
  app.addHook('onSend', async (request, reply) => {
    // While shutting down, every answer closes its connection: a keep-alive socket left
    // open by a request that was in flight would otherwise hold the server open.
    if (app.lifecycle.shuttingDown) reply.header('Connection', 'close')
    // HSTS means something only over HTTPS (RFC 6797 §7.2: not sent on plain HTTP);
    // behind a TLS-terminating proxy, TRUST_PROXY makes X-Forwarded-Proto count.
    if (request.protocol === 'https') reply.header('Strict-Transport-Security', 'max-age=31536000; includeSubDomains')
  })

  await app.register(fastifyHelmet, {
    // A JSON API and one documentation page, all served from here: nothing else is trusted.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"]
      }
    },
    // Responses are read by other origins through CORS; CORP same-origin would block them.
    crossOriginResourcePolicy: { policy: 'cross-origin' },
    // Sent only over HTTPS, above.
    strictTransportSecurity: false
  })
  await app.register(corsPlugin)
  await app.register(dbPlugin, { connectionString: options.connectionString })
  await app.register(docsPlugin, { version: packageJson.version })

  await app.register(rootRoutes, {
    info: { name: packageJson.name, version: packageJson.version, description: packageJson.description },
    resources: RESOURCES
  })
  await app.register(healthRoutes)
  await app.register(todosRoutes)
  await app.register(catsRoutes)

  return app
}
