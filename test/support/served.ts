import type { Test } from 'tap'
import { buildTestApp } from './app.js'

/** fetch against a port, with a deadline, timed. */
export const clientOf = (port: number) => async (path: string, init: RequestInit & { timeoutMs?: number } = {}) => {
  const started = performance.now()
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, signal: AbortSignal.timeout(init.timeoutMs ?? 10_000) })
  const body = await response.text()
  return { status: response.status, headers: response.headers, body, ms: performance.now() - started, json: () => JSON.parse(body) as Record<string, unknown> }
}

/** The app on a real port, and a timed client for it. */
export async function serve(t: Test, env: Record<string, string> = {}) {
  const { app, db } = await buildTestApp(t, { env })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  return { app, db, port, request: clientOf(port) }
}

/** A JSON POST for `clientOf`'s requests. */
export const jsonPost = (body: unknown, headers: Record<string, string> = {}) => ({ method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })
