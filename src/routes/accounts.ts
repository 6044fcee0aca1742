import { Type, type FastifyPluginAsyncTypebox, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { PASSWORD_MAX_LENGTH, hashPassword, verifyPassword } from '../auth/passwords.js'
import { signupOpen } from '../config.js'
import { HttpProblem, emptyResponse, jsonResponse, notFound, problemResponses, tooManyRequests, unauthenticated } from '../lib/problem.js'
import { clientNetworks, type Bucket } from '../auth/limits.js'
import { DateTimeInput, IdParams, NOT_BLANK } from '../lib/schema.js'
import { operationSecurity } from '../plugins/auth.js'
import { Email, Name, NewToken, Password, Token, User } from './account-schemas.js'
import { baseUrl } from '../lib/urls.js'
import { trimText } from '../lib/validation.js'

/**
 * Accounts: sign-up (`POST /users`), tokens for an email and password (`POST /tokens`),
 * the caller's own tokens and account. Tokens and users are only ever the caller's own:
 * another user's token id is a 404.
 */
const accountRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { accounts, authenticate } = app.auth
  const security = operationSecurity(app.config.AUTH_MODE)
  app.addSchema(User)
  app.addSchema(Token)

  // Guessing passwords and filling the table with accounts both cost attempts, counted in
  // PostgreSQL (auth/limits.ts: shared by every replica, kept across restarts) and only
  // once an attempt is well formed and about to check or hash a password: AUTH_RATE_LIMIT
  // a minute per client address (an IPv6 client by its /64), four times that per network
  // (/24, /56). Sign-in is also limited per email from anywhere, at ten times that, and an
  // attempt its address or network refuses does not count there: an attacker needs three
  // networks to lock an owner out. Sign-up per email; a password check at PATCH /users/me
  // per token.
  const { limiter } = app.auth
  const perMinute = app.config.AUTH_RATE_LIMIT
  const enforce = async (request: FastifyRequest, route: string, subject: Bucket) => {
    const { client, network } = clientNetworks(request.ip, app.config.RATE_LIMIT_IPV6_PREFIX)
    const verdict = await limiter.hit([
      { name: `${route}:address:${client}`, limit: perMinute },
      { name: `${route}:network:${network}`, limit: 4 * perMinute },
      subject
    ])
    if (!verdict.allowed) throw tooManyRequests(`too many attempts; try again in ${verdict.retryAfterSeconds} s`, verdict.retryAfterSeconds)
  }

  const publicUser = ({ id, email, name, created_at, updated_at }: { id: number; email: string; name: string; created_at: string; updated_at: string }) => ({
    id,
    email,
    name,
    created_at,
    updated_at
  })
  const me = async (request: FastifyRequest) => {
    const { userId, tokenId } = await app.auth.caller(request)
    const user = await accounts.user(userId)
    if (user === undefined) throw unauthenticated(true) // deleted meanwhile
    return { user, tokenId }
  }
  const emailTaken = (error: unknown) => {
    if ((error as { code?: string; constraint?: string }).constraint === 'users_email_key') {
      return new HttpProblem(409, 'EMAIL_TAKEN', 'an account with this email already exists')
    }
    return error
  }

  app.post(
    '/users',
    {
      schema: {
        tags: ['accounts'],
        operationId: 'signUp',
        summary: 'Sign up',
        description: 'Creates an account (when `SIGNUP=open`); then `POST /tokens` gives it a token.',
        body: Type.Object({ email: Email, name: Name, password: Password }, { additionalProperties: false }),
        response: { 201: jsonResponse(Type.Ref(User), 'The new account', ['Location']), ...problemResponses(403, 409, 413, 415, 429, 504) }
      }
    },
    async (request, reply) => {
      if (!signupOpen(app.config)) throw new HttpProblem(403, 'SIGNUP_CLOSED', 'sign-up is closed on this service; an operator creates accounts (`make user`)')
      const { email, name, password } = request.body
      await enforce(request, 'users', { name: `users:email:${email.toLowerCase()}`, limit: perMinute })
      const user = await accounts.createUser({ email, name: trimText(name), passwordHash: await hashPassword(password) }).catch((error: unknown) => {
        throw emailTaken(error)
      })
      reply.code(201).header('Location', `${baseUrl(request, app.config.PUBLIC_BASE_URL)}/users/me`)
      return publicUser(user)
    }
  )

  app.post(
    '/tokens',
    {
      schema: {
        tags: ['accounts'],
        operationId: 'createToken',
        summary: 'Get a token for an email and password',
        description:
          'Answers with the token once; only its hash is kept. An unknown email and a wrong password get the same 401. ' +
          'Rate-limited per client address and per email (429 with `Retry-After`).',
        body: Type.Object(
          {
            email: Email,
            password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }),
            name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: NOT_BLANK, description: 'What the token is for' })),
            expires_at: Type.Optional(DateTimeInput({ description: 'When the token stops working; never by default' }))
          },
          { additionalProperties: false }
        ),
        response: { 201: jsonResponse(NewToken, 'The new token, shown this once', ['Cache-Control']), ...problemResponses(401, 413, 415, 429, 504) }
      }
    },
    async (request, reply) => {
      const { email, password, name = 'API token', expires_at: expiresAt } = request.body
      if (expiresAt !== undefined && Date.parse(expiresAt) <= Date.now()) {
        throw new HttpProblem(400, 'VALIDATION_FAILED', 'body.expires_at must be in the future', {
          errors: [{ in: 'body', field: 'expires_at', message: 'must be in the future' }]
        })
      }
      await enforce(request, 'tokens', { name: `tokens:email:${email.toLowerCase()}`, limit: 10 * perMinute })
      const user = await accounts.userByEmail(email)
      // Hashed either way: an unknown email takes as long as a wrong password.
      const valid = await verifyPassword(password, user?.password_hash)
      if (user === undefined || !valid || !user.password_hash) throw unauthenticated(true)
      const token = await accounts.createToken(user.id, trimText(name), expiresAt ?? null, user.password_hash)
      if (token === undefined) throw unauthenticated(true) // the password changed while it was checked
      reply.code(201).header('Cache-Control', 'no-store')
      return token
    }
  )

  await app.register(async (scope) => {
    const protectedRoutes = scope.withTypeProvider<TypeBoxTypeProvider>()
    protectedRoutes.addHook('onRequest', authenticate)
    protectedRoutes.addHook('preParsing', app.auth.proveBeforeLargeBody)
    protectedRoutes.addHook('onResponse', app.auth.recordUse)

    protectedRoutes.get(
      '/tokens',
      {
        schema: {
          tags: ['accounts'],
          operationId: 'listTokens',
          summary: "List the caller's tokens",
          description: 'Tokens not revoked, expired ones included; never the tokens themselves.',
          security,
          response: { 200: jsonResponse(Type.Array(Type.Ref(Token)), "The caller's tokens"), ...problemResponses(401) }
        }
      },
      async (request) => accounts.tokens((await app.auth.caller(request)).userId)
    )

    protectedRoutes.delete(
      '/tokens/:id',
      {
        schema: {
          tags: ['accounts'],
          operationId: 'revokeToken',
          summary: 'Revoke a token',
          description: 'Refused from the next request on, on every instance.',
          params: IdParams,
          security,
          response: { 204: emptyResponse('Revoked'), ...problemResponses(401, 404, 414, 504) }
        }
      },
      async (request, reply) => {
        const { userId } = await app.auth.caller(request)
        if (!(await accounts.revokeToken(userId, request.params.id))) throw notFound(`token ${request.params.id} does not exist`)
        return reply.code(204).send(undefined as never)
      }
    )

    protectedRoutes.get(
      '/users/me',
      {
        schema: {
          tags: ['accounts'],
          operationId: 'getMe',
          summary: "The caller's account",
          security,
          response: { 200: jsonResponse(Type.Ref(User), 'Your account'), ...problemResponses(401) }
        }
      },
      async (request) => publicUser((await me(request)).user)
    )

    protectedRoutes.patch(
      '/users/me',
      {
        schema: {
          tags: ['accounts'],
          operationId: 'updateMe',
          summary: "Change the caller's account",
          description:
            'A new email or password needs `current_password` (unless the account has none yet). A new password revokes ' +
            'every other token of the account; the one used for this request keeps working.',
          body: Type.Object(
            {
              name: Type.Optional(Name),
              email: Type.Optional(Email),
              password: Type.Optional(Password),
              current_password: Type.Optional(Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }))
            },
            { additionalProperties: false }
          ),
          security,
          response: { 200: jsonResponse(Type.Ref(User), 'Your account as changed'), ...problemResponses(401, 403, 409, 413, 415, 429, 504) }
        }
      },
      async (request) => {
        const { user, tokenId } = await me(request)
        const { name, email, password, current_password: current } = request.body
        if (user.builtin && (email !== undefined || password !== undefined)) {
          // Nobody may ever sign in as the local user: with AUTH_MODE=local anyone (any web
          // page, through CORS) acts as it, and a password would outlive that mode.
          throw new HttpProblem(409, 'BUILTIN_USER', 'the built-in local user has no email or password to change; only its name')
        }
        const checked = (email !== undefined || password !== undefined) && user.password_hash !== null
        if (checked) {
          await enforce(request, 'me', { name: `me:caller:${tokenId ?? `user ${user.id}`}`, limit: perMinute })
          if (current === undefined || !(await verifyPassword(current, user.password_hash))) {
            throw new HttpProblem(403, 'CURRENT_PASSWORD_REQUIRED', 'changing the email or password needs the current password in current_password')
          }
        }
        const changes = {
          ...(name !== undefined ? { name: trimText(name) } : {}),
          ...(email !== undefined ? { email } : {}),
          ...(password !== undefined ? { passwordHash: await hashPassword(password) } : {})
        }
        // Applied only if the account is still as it was when its password was checked,
        // and the caller's token still valid, in the same statement: of two changes
        // checked against the same password, the first to commit wins and the other
        // changes nothing.
        const outcome = await accounts
          .updateUser(user.id, changes, { tokenId, version: checked ? user.version : undefined })
          .catch((error: unknown) => {
            throw emailTaken(error)
          })
        if (outcome.status !== 'ok') {
          if (outcome.status === 'caller-gone') throw unauthenticated(true)
          throw new HttpProblem(409, 'ACCOUNT_CHANGED', 'the account changed while this request checked its password; nothing was changed: check it and try again')
        }
        return publicUser(outcome.user)
      }
    )

    protectedRoutes.delete(
      '/users/me',
      {
        schema: {
          tags: ['accounts'],
          operationId: 'deleteMe',
          summary: "Delete the caller's account",
          description: 'With every todo, cat and token of it. The built-in local user cannot be deleted.',
          security,
          response: { 204: emptyResponse('Deleted'), ...problemResponses(401, 409, 504) }
        }
      },
      async (request, reply) => {
        const { user } = await me(request)
        if (user.builtin) throw new HttpProblem(409, 'BUILTIN_USER', 'the built-in local user cannot be deleted; DELETE /todos and DELETE /cats empty its lists')
        await accounts.deleteUser(user.id)
        return reply.code(204).send(undefined as never)
      }
    )
  })
}

export default accountRoutes
