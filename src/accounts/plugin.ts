import { isIP } from 'node:net'
import type { FastifyInstance, FastifyRequest, onRequestHookHandler, onResponseHookHandler, preParsingHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { errorLine } from '../lib/logger.js'
import { runPeriodically } from '../lib/periodic.js'
import { HttpProblem, tooManyRequests, unauthenticated } from '../lib/problem.js'
import { SMALL_BODY_BYTES } from '../lib/validation.js'
import { clientNetworks, createLimiter, type Bucket } from './limits.js'
import { createQuotas, type QuotaVerdict } from './quotas.js'
import type { Owner } from './owner.js'
import { createAccountStore, type AccountStore } from './store.js'
import { hashToken, isWellFormedToken } from './tokens.js'

declare module 'fastify' {
  interface FastifyInstance {
    auth: {
      /** onRequest hook of every protected route: sets `request.owner`, or answers 401. */
      authenticate: onRequestHookHandler
      /** onResponse hook of every protected route: a token an answer showed valid has its use recorded (at most once a minute). */
      recordUse: onResponseHookHandler
      /**
       * preParsing hook of every protected route: a body past SMALL_BODY_BYTES (or of
       * unknown length) is read only for a token that is valid, checked first, so that
       * only a client who proved who it is can make the service read and parse a large
       * one. Most writes are far smaller; a longer one costs one more query.
       */
      proveBeforeLargeBody: preParsingHookHandler
      /** Makes every route of `scope` a protected one: the three hooks above, and the caller's quota (`meter`). */
      protect(scope: FastifyInstance): void
      /**
       * Holds every route of `scope` to the caller's quota (RATE_LIMIT_PER_MINUTE, quotas.ts):
       * `RateLimit` and `RateLimit-Policy` on every answer, 429 past it. Its onRequest hook
       * goes after `authenticate`.
       */
      meter(scope: FastifyInstance): void
      /** `meter`'s hook, for a route that authenticates in its own route-level hooks. */
      quota: { onRequest: onRequestHookHandler }
      /**
       * After a statement scoped by the request's owner found or changed nothing: 401 if
       * the token was not valid (rather than an empty page or a 404).
       */
      assertAuthenticated(request: FastifyRequest): Promise<void>
      /** The caller as a user id, and the token they used if any; 401 if the token is not valid. */
      caller(request: FastifyRequest): Promise<{ userId: number; tokenId: number | null }>
      accounts: AccountStore
      /** The rate limits of credentials, counted in PostgreSQL (limits.ts). */
      limiter: ReturnType<typeof createLimiter>
      /**
       * Counts an attempt at `route` that is about to check or hash a password, per
       * client address, per network, then per `subject` (an email, a token); 429 past any.
       */
      limitAttempt(request: FastifyRequest, route: string, subject: Bucket): Promise<void>
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

/**
 * Answers that only a valid token can get: any but those that can come before a statement
 * checked the token (a malformed request, a body refused, 401, 429, a failure).
 */
const provesToken = (status: number) => status < 400 || (status < 500 && ![400, 401, 413, 415, 429].includes(status))

/** Counters whose window ended are deleted this often, a batch at a time, by every instance. */
const REAP_EVERY_MS = 5 * 60_000

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
  const limiter = createLimiter(app.db)
  runPeriodically(app, 'expired rate-limit counters', REAP_EVERY_MS, () => limiter.reap())
  const local = app.config.AUTH_MODE === 'local'
  let localUserId: number | undefined

  const perMinute = app.config.RATE_LIMIT_PER_MINUTE
  const quotas = perMinute > 0 ? createQuotas(app.db, { perMinute, onError: (error) => app.log.warn({ reason: errorLine(error) }, 'could not count quotas') }) : undefined
  if (quotas) app.addHook('onClose', () => quotas.close().catch(() => {}))
  const policy = `"minute";q=${perMinute};w=60`
  const quota = {
    onRequest: ((request, reply, done) => {
      const { owner } = request
      if (quotas === undefined || owner === null) return done()
      const answer = (verdict: QuotaVerdict) => {
        reply.header('RateLimit-Policy', policy)
        reply.header('RateLimit', `"minute";r=${verdict.allowed ? verdict.remaining : 0};t=${verdict.resetSeconds}`)
        if (!verdict.allowed) return done(tooManyRequests(`more than ${perMinute} requests a minute; try again in ${verdict.resetSeconds} s`, verdict.resetSeconds))
        // Counted when the response closes, sent or not: a client that hangs up before its
        // answer has still had the work done. Only what shows the token valid counts (an
        // answer no statement could give a token that is not), or a caller already counted
        // here: a made-up token costs no row.
        reply.raw.once('close', () => {
          if (reply.raw.writableFinished ? provesToken(reply.statusCode) : quotas.isKnown(owner)) quotas.count(owner)
        })
        done()
      }
      const verdict = quotas.check(owner)
      if ('then' in verdict) verdict.then(answer, (error: Error) => done(error))
      else answer(verdict)
    }) as onRequestHookHandler,
  }
  const meter = (scope: FastifyInstance) => {
    if (quotas === undefined) return
    scope.addHook('onRequest', quota.onRequest)
  }

  // A token's use is recorded once an answer shows it was valid (a 2xx or 3xx), so a
  // made-up token costs no write.
  const touched = new Map<Buffer, number>()
  const touch = (hash: Buffer) => {
    const now = Date.now()
    if ((touched.get(hash) ?? 0) > now - TOUCH_INTERVAL_MS) return
    if (touched.size >= TOUCH_MEMORY) touched.clear()
    touched.set(hash, now)
    accounts.touchToken(hash).catch((error: unknown) => app.log.warn({ reason: errorLine(error) }, 'could not record a token use'))
  }
  const recordUse: onResponseHookHandler = (request, reply, done) => {
    const hash = request.owner?.tokenHash
    if (hash !== undefined && reply.statusCode < 400) touch(hash)
    done()
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
      if (token === undefined || !isWellFormedToken(token)) return done(unauthenticated(true, 'malformed_token'))
      request.owner = { tokenHash: hashOf(token) }
      return done()
    }
    if (!local) return done(unauthenticated(false))
    // The Host the client sent: a trusted proxy's X-Forwarded-Host is the client's to choose.
    if (!isLocalHost(request.headers.host ?? '')) return done(localHostOnly())
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

  const proveBeforeLargeBody: preParsingHookHandler = (request, _reply, payload, done) => {
    const { tokenHash } = request.owner
    const length = request.headers['content-length']
    const large = length === undefined ? request.headers['transfer-encoding'] !== undefined : Number(length) > SMALL_BODY_BYTES
    if (tokenHash === undefined || !large) return done(null, payload)
    accounts.tokenIsValid(tokenHash).then(
      (valid) => done(valid ? null : unauthenticated(true), payload),
      (error: Error) => done(error, payload)
    )
  }

  app.decorateRequest('owner', null as never)
  app.decorate('auth', {
    authenticate,
    recordUse,
    proveBeforeLargeBody,
    protect(scope: FastifyInstance) {
      scope.addHook('onRequest', authenticate)
      meter(scope)
      scope.addHook('preParsing', proveBeforeLargeBody)
      scope.addHook('onResponse', recordUse)
    },
    meter,
    quota,
    accounts,
    limiter,
    // Guessing passwords and filling the table with accounts both cost attempts, counted
    // in PostgreSQL (shared by every replica, kept across restarts), and only once an
    // attempt is well formed: AUTH_RATE_LIMIT a minute per client address (an IPv6 client
    // by its /64), four times that per network (/24, /56), then per subject. An attempt
    // its address or network refuses does not count against the subject, so an attacker
    // needs several networks to use up an account's attempts.
    async limitAttempt(request: FastifyRequest, route: string, subject: Bucket) {
      const perMinute = app.config.AUTH_RATE_LIMIT
      const { client, network } = clientNetworks(request.ip, app.config.RATE_LIMIT_IPV6_PREFIX)
      const verdict = await limiter.hit([{ name: `${route}:address:${client}`, limit: perMinute }, { name: `${route}:network:${network}`, limit: 4 * perMinute }, subject])
      if (!verdict.allowed) throw tooManyRequests(`too many attempts; try again in ${verdict.retryAfterSeconds} s`, verdict.retryAfterSeconds)
    },
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

/**
 * AUTH_MODE=local acts for the local user only when the request names this machine: an
 * IP address, `localhost`, or a name without a dot (a container's or a machine's own).
 * A page can make a DNS name of its site point at 127.0.0.1 (DNS rebinding), and would
 * then be same-origin with the service, CORS or not; such a name always has a dot.
 */
function isLocalHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '')
  return !name.includes('.') || name === 'localhost' || name.endsWith('.localhost') || isIP(name) !== 0
}

const localHostOnly = () =>
  new HttpProblem(403, 'LOCAL_HOST_ONLY', 'AUTH_MODE=local serves requests without a token only on an IP address, localhost or a name without a dot; send a token, or use http://localhost')

export default fp(authPlugin, { name: 'auth', fastify: '5.x', dependencies: ['db'] })
