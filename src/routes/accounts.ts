import { Type, type FastifyPluginAsyncTypebox, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import { PASSWORD_MAX_LENGTH, hashPassword, verifyPassword } from '../auth/passwords.js'
import { signupOpen } from '../config.js'
import { HttpProblem, emptyResponse, jsonResponse, notFound, problemResponses, unauthenticated } from '../lib/problem.js'
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

  // Guessing passwords and filling the table with accounts both cost attempts: each client
  // address and each email gets AUTH_RATE_LIMIT a minute on each of these routes.
  // PATCH /users/me checks a password too: limited per address and per caller (the
  // token, or the local user), so a stolen token cannot guess the password it would need.
  const limited = (by: 'email' | 'caller' = 'email'): preHandlerAsyncHookHandler => {
    const options = { max: app.config.AUTH_RATE_LIMIT, timeWindow: 60_000 }
    const perAddress = app.createRateLimit({ ...options, keyGenerator: (request) => request.ip })
    const perSubject = app.createRateLimit({
      ...options,
      keyGenerator: (request) =>
        by === 'email'
          ? String((request.body as { email: string }).email).toLowerCase()
          : (request.owner.tokenHash?.toString('base64') ?? `user:${request.owner.userId}`)
    })
    return async (request) => {
      for (const limit of [perAddress, perSubject]) {
        const result = await limit(request)
        if (!result.isAllowed && result.isExceeded) {
          throw new HttpProblem(429, 'RATE_LIMITED', `too many attempts; try again in ${result.ttlInSeconds} s`, { retryAfterSeconds: Math.max(1, result.ttlInSeconds) })
        }
      }
    }
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
      preHandler: limited(),
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
      preHandler: limited(),
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
        preHandler: limited('caller'),
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
        if ((email !== undefined || password !== undefined) && user.password_hash !== null) {
          if (current === undefined || !(await verifyPassword(current, user.password_hash))) {
            throw new HttpProblem(403, 'CURRENT_PASSWORD_REQUIRED', 'changing the email or password needs the current password in current_password')
          }
        }
        const changes = {
          ...(name !== undefined ? { name: trimText(name) } : {}),
          ...(email !== undefined ? { email } : {}),
          ...(password !== undefined ? { passwordHash: await hashPassword(password) } : {})
        }
        const updated = await accounts.updateUser(user.id, changes, tokenId).catch((error: unknown) => {
          throw emailTaken(error)
        })
        if (updated === undefined) throw unauthenticated(true)
        return publicUser(updated)
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
