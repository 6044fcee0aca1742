import fastifyRateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { Owner } from '../auth/owner.js'
import { createAccountStore, type AccountStore } from '../auth/store.js'
import { hashToken, isWellFormedToken } from '../auth/tokens.js'
import { HttpProblem, unauthenticated } from '../lib/problem.js'
import { errorLine } from '../logger.js'

declare module 'fastify' {
  interface FastifyInstance {
    auth: {
      /** onRequest hook of every protected route: sets `request.owner`, or answers 401. */
      authenticate: onRequestHookHandler
      /**
       * After a statement scoped by the request's owner found or changed nothing: 401 if
       * the token was not valid (rather than an empty page or a 404).
       */
      assertAuthenticated(request: FastifyRequest): Promise<void>
      /** The caller as a user id, and the token they used if any; 401 if the token is not valid. */
      caller(request: FastifyRequest): Promise<{ userId: number; tokenId: number | null }>
      accounts: AccountStore
    }
  }
  interface FastifyRequest {
    /** Who the request acts for: set by `app.auth.authenticate` on protected routes. */
    owner: Owner
  }
}

/**
 * The OpenAPI `security` of a protected operation: a bearer token, or (AUTH_MODE=local)
 * nothing at all.
 */
export const operationSecurity = (mode: 'required' | 'local'): Array<Record<string, string[]>> =>
  mode === 'local' ? [{ bearerAuth: [] }, {}] : [{ bearerAuth: [] }]

/** Tokens whose last use was written less than this long ago are not written again. */
const TOUCH_INTERVAL_MS = 60_000
const TOUCH_MEMORY = 10_000

/**
 * Who a request is. `Authorization: Bearer <token>` acts as the token's user; without it
 * a request is refused (AUTH_MODE=required) or acts as the built-in local user
 * (AUTH_MODE=local, for `make dev` and in-browser clients). Tokens are checked inside the
 * statements that read and write the rows (auth/owner.ts), not on a round trip of their own.
 */
async function authPlugin(app: FastifyInstance) {
  const accounts = createAccountStore(app.db)
  const local = app.config.AUTH_MODE === 'local'
  let localUserId: number | undefined

  // Per-route limits only (POST /users, POST /tokens), answered as problem+json.
  await app.register(fastifyRateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new HttpProblem(429, 'RATE_LIMITED', `too many attempts; try again in ${context.after}`, { retryAfterSeconds: Math.max(1, Math.ceil(context.ttl / 1000)) })
  })

  const touched = new Map<string, number>()
  const touch = (token: string, hash: Buffer) => {
    const now = Date.now()
    if ((touched.get(token) ?? 0) > now - TOUCH_INTERVAL_MS) return
    if (touched.size >= TOUCH_MEMORY) touched.clear()
    touched.set(token, now)
    accounts.touchToken(hash).catch((error: unknown) => app.log.warn({ reason: errorLine(error) }, 'could not record a token use'))
  }

  // The hash of each token seen lately, so a busy client's token is not hashed (and a
  // new Buffer made) on every request. Only the hash is remembered, never a verdict:
  // whether the token is valid is asked of the database by every statement.
  const hashes = new Map<string, Buffer>()
  const hashOf = (token: string) => {
    let hash = hashes.get(token)
    if (hash === undefined) {
      if (hashes.size >= TOUCH_MEMORY) hashes.clear()
      hash = hashToken(token)
      hashes.set(token, hash)
    }
    return hash
  }

  const authenticate: onRequestHookHandler = (request, _reply, done) => {
    const header = request.headers.authorization
    if (header !== undefined) {
      const match = /^Bearer +(\S+) *$/i.exec(header)
      const token = match?.[1]
      if (token === undefined || !isWellFormedToken(token)) return done(unauthenticated(true))
      const tokenHash = hashOf(token)
      request.owner = { tokenHash }
      touch(token, tokenHash)
      return done()
    }
    if (!local) return done(unauthenticated(false))
    if (localUserId !== undefined) {
      request.owner = { userId: localUserId }
      return done()
    }
    accounts.localUserId().then(
      (id) => {
        localUserId = id
        request.owner = { userId: id }
        done()
      },
      (error: Error) => done(error)
    )
  }

  app.decorateRequest('owner', null as never)
  app.decorate('auth', {
    authenticate,
    accounts,
    async assertAuthenticated(request: FastifyRequest) {
      const { tokenHash } = request.owner
      if (tokenHash !== undefined && !(await accounts.tokenIsValid(tokenHash))) throw unauthenticated(true)
    },
    async caller(request: FastifyRequest) {
      const { tokenHash, userId } = request.owner
      if (tokenHash === undefined) return { userId, tokenId: null }
      const found = await accounts.tokenUser(tokenHash)
      if (found === undefined) throw unauthenticated(true)
      return found
    }
  })
}

export default fp(authPlugin, { name: 'auth', fastify: '5.x', dependencies: ['db'] })
