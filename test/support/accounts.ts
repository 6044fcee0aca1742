import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'

/** The account tests' mode: every request says who it is. */
export const REQUIRED = { AUTH_MODE: 'required' }

export interface Account {
  id: number
  email: string
  token: string
  auth: { authorization: string }
}

/** A user signed up with a password, and a first token of theirs. */
export async function signUp(t: Test, app: FastifyInstance, email: string, password = 'correct horse battery'): Promise<Account> {
  const user = await app.inject({ method: 'POST', url: '/users', payload: { email, name: email.split('@')[0], password } })
  t.equal(user.statusCode, 201, `${email} signed up`)
  const token = await app.inject({ method: 'POST', url: '/tokens', payload: { email, password } })
  t.equal(token.statusCode, 201, `${email} got a token`)
  const secret = (token.json() as { token: string }).token
  return { id: (user.json() as { id: number }).id, email, token: secret, auth: { authorization: `Bearer ${secret}` } }
}
