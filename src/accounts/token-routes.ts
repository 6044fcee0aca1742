import { Type, type FastifyPluginAsyncTypebox, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { HttpProblem, emptyResponse, jsonResponse, notFound, problemResponses, unauthenticated } from '../lib/problem.js'
import { DateTimeInput, IdParams, NOT_BLANK } from '../lib/schema.js'
import { trimText } from '../lib/text.js'
import { PASSWORD_MAX_LENGTH, passwords } from './passwords.js'
import { operationSecurity } from './plugin.js'
import { Email, NewToken, Token } from './schemas.js'

/**
 * Tokens: one for an email and password (`POST /tokens`), and the caller's own, listed
 * and revoked. Another user's token id is a 404.
 */
const tokenRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { accounts } = app.auth
  const security = operationSecurity(app.config.AUTH_MODE)
  const perMinute = app.config.AUTH_RATE_LIMIT
  const { verify: verifyPassword } = passwords(app.config.PASSWORD_HASH_COST)
  app.addSchema(Token)

  app.post(
    '/tokens',
    {
      schema: {
        tags: ['accounts'],
        operationId: 'createToken',
        summary: 'Get a token for an email and password',
        description:
          'Answers with the token once; only its hash is kept. An unknown email and a wrong password get the same 401. ' +
          'Rate-limited per client address and network, and per email (429 with `Retry-After`).',
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
      await app.auth.limitAttempt(request, 'tokens', { name: `tokens:email:${email.toLowerCase()}`, limit: 10 * perMinute })
      const user = await accounts.userByEmail(email)
      // Hashed either way: an unknown email takes as long as a wrong password.
      const valid = await verifyPassword(password, user?.password_hash)
      if (user === undefined || !valid || !user.password_hash) throw unauthenticated(true, 'wrong_credentials')
      const token = await accounts.createToken(user.id, trimText(name), expiresAt ?? null, user.password_hash)
      if (token === undefined) throw unauthenticated(true, 'wrong_credentials') // the password changed while it was checked
      reply.code(201).header('Cache-Control', 'no-store')
      return token
    }
  )

  await app.register(async (scope) => {
    const protectedRoutes = scope.withTypeProvider<TypeBoxTypeProvider>()
    app.auth.protect(scope)

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
  })
}

export default tokenRoutes
