/**
 * The bundled nginx's per-address limit (docker/nginx/nginx.conf, limit_req), run for real
 * with Debian's nginx in front of the API: the shipped configuration with only its rate
 * and burst made small, so a short test can pass them.
 */
import t from 'tap'
import { listeningTestApp } from '../helper.js'
import { startNginx } from '../support/nginx.js'

t.test('nginx refuses an address past its rate and burst with a 429 problem+json and Retry-After', async (t) => {
  const { app } = await listeningTestApp(t, { env: { AUTH_MODE: 'local', RATE_LIMIT_PER_MINUTE: '3' } })
  const address = app.server.address()
  const nginx = await startNginx(t, [typeof address === 'object' && address !== null ? address.port : 0], [
    [/rate=500r\/s;$/, 'rate=1r/m;'],
    [/^(\s*)limit_req zone=per_address burst=1000 nodelay;$/, '$1limit_req zone=per_address burst=5 nodelay;']
  ])
  // Eight at once from one address: one at the rate and a burst of five pass, two are refused at the edge.
  const answers = await Promise.all(Array.from({ length: 8 }, () => fetch(`${nginx.url}/health/live`)))
  const statuses = answers.map((answer) => answer.status).sort()
  t.same(statuses, [200, 200, 200, 200, 200, 200, 429, 429], 'the rate and the burst, then 429')
  const refused = answers.find((answer) => answer.status === 429) as Response
  t.equal(refused.headers.get('content-type'), 'application/problem+json')
  t.equal(refused.headers.get('retry-after'), '1')
  t.match(await refused.json(), { status: 429, code: 'RATE_LIMITED' })
  t.ok(nginx.output.some((line) => /limiting requests/.test(line)), 'logged at warn')
})

t.test("the API's per-token 429 passes through nginx unchanged", async (t) => {
  const { app } = await listeningTestApp(t, { env: { AUTH_MODE: 'local', RATE_LIMIT_PER_MINUTE: '3' } })
  const address = app.server.address()
  const nginx = await startNginx(t, [typeof address === 'object' && address !== null ? address.port : 0])
  const statuses: number[] = []
  let last: Response | undefined
  for (let i = 0; i < 6; i++) {
    last = await fetch(`${nginx.url}/todos`)
    statuses.push(last.status)
  }
  t.same(statuses.slice(0, 3), [200, 200, 200])
  t.equal(statuses.at(-1), 429)
  t.match(last?.headers.get('ratelimit'), /^"minute";r=0;t=\d+$/, "the API's answer, with its RateLimit header")
  t.match(await last?.json(), { code: 'RATE_LIMITED', detail: /requests a minute/ })
})
