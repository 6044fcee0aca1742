import { Type, type FastifyPluginAsyncTypebox, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { signupOpen } from '../config-meaning.js'
import { HttpProblem, emptyResponse, jsonResponse, problemResponses, unauthenticated } from '../lib/problem.js'
import { trimText } from '../lib/text.js'
import { baseUrl } from '../lib/urls.js'
import { PASSWORD_MAX_LENGTH, passwords } from './passwords.js'
import { operationSecurity } from './plugin.js'
import { Email, Name, Password, User } from './schemas.js'

/**
 * Users: sign-up (`POST /users`), and the caller's own account. `resources` names what an
 * account owns (the resources' plural names, and the paths that empty them), for the texts.
 */
const userRoutes: FastifyPluginAsyncTypebox<{ resources: ReadonlyArray<{ plural: string; path: string; deleteAll?: boolean | undefined }> }> = async (app, options) => {
  const { accounts } = app.auth
  const security = operationSecurity(app.config.AUTH_MODE)
  const perMinute = app.config.AUTH_RATE_LIMIT
  const { hash: hashPassword, verify: verifyPassword } = passwords(app.config.PASSWORD_HASH_COST)
  const rows = options.resources.map((resource) => resource.plural).join(', ')
  const emptying = options.resources.filter((resource) => resource.deleteAll).map((resource) => `DELETE ${resource.path}`).join(' and ') || 'deleting its rows one by one'
  app.addSchema(User)

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
      await app.auth.limitAttempt(request, 'users', { name: `users:email:${email.toLowerCase()}`, limit: perMinute })
      const user = await accounts.createUser({ email, name: trimText(name), passwordHash: await hashPassword(password) }).catch((error: unknown) => {
        throw emailTaken(error)
      })
      reply.code(201).header('Location', `${baseUrl(request, app.config.PUBLIC_BASE_URL)}/users/me`)
      return publicUser(user)
    }
  )

  await app.register(async (scope) => {
    const protectedRoutes = scope.withTypeProvider<TypeBoxTypeProvider>()
    app.auth.protect(scope)

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
          await app.auth.limitAttempt(request, 'me', { name: `me:caller:${tokenId ?? `user ${user.id}`}`, limit: perMinute })
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
          description: `With every ${rows} and token of it. The built-in local user cannot be deleted.`,
          security,
          response: { 204: emptyResponse('Deleted'), ...problemResponses(401, 409, 504) }
        }
      },
      async (request, reply) => {
        const { user } = await me(request)
        if (user.builtin) throw new HttpProblem(409, 'BUILTIN_USER', `the built-in local user cannot be deleted; ${emptying} empty its lists`)
        await accounts.deleteUser(user.id)
        return reply.code(204).send(undefined as never)
      }
    )
  })
}

export default userRoutes
