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

t.test('an IPv6 client is limited by its /64, whichever of its addresses it uses; an IPv4 client by its address', async (t) => {
  const { app } = await listeningTestApp(t, { env: { AUTH_MODE: 'local' } })
  const address = app.server.address()
  // Only for this test: the client's address from a header (realip), as if it had connected from it.
  const nginx = await startNginx(t, [typeof address === 'object' && address !== null ? address.port : 0], [
    [/rate=500r\/s;$/, 'rate=1r/m;'],
    [/^(\s*)limit_req zone=per_address burst=1000 nodelay;$/, '$1limit_req zone=per_address burst=1 nodelay;'],
    [/^(\s*)client_max_body_size 1m;$/, '$1client_max_body_size 1m; set_real_ip_from 127.0.0.1; real_ip_header X-Test-Client;']
  ])
  const status = async (client: string) => (await fetch(`${nginx.url}/health/live`, { headers: { 'x-test-client': client } })).status
  // Each line: addresses of one network, in turn; one at the rate and a burst of one pass, then 429.
  const networks = [
    ['2001:db8:1:2::5', '2001:db8:1:2:ffff:ffff:ffff:9', '2001:db8:1:2:0:0:0:7'],
    ['2001:db8:1:3::5', '2001:db8:1:3:1:2:3:4', '2001:db8:1:3:a::'],
    ['2001:db8::1', '2001:db8::1:2:3:4', '2001:db8:0:0:5::6'],
    ['::5:1:2:3:4', '0:0:0:5:ffff::1', '::5:0:0:0:9'],
    ['1:0:0:5:1:2:3:4', '1::5:ffff:0:0:0', '1:0:0:5::'],
    ['::1', '::2', '0:0:0:0:1::'],
    ['2001:db8:1:0:1:2:3:4', '2001:db8:1:0:0:2:3:4', '2001:db8:1::'],
    ['2001:db9:0:0:5::', '2001:db9::5:1:2:3', '2001:db9:0:0:6::'],
    ['192.0.2.1', '192.0.2.1', '192.0.2.1']
  ]
  for (const network of networks) {
    const statuses: number[] = []
    for (const client of network) statuses.push(await status(client))
    t.same(statuses, [200, 200, 429], `one limit for ${network.join(', ')}`)
  }
  t.equal(await status('192.0.2.2'), 200, 'the next IPv4 address has its own')
  t.equal(await status('2001:db8:1:4::5'), 200, 'and the next /64')
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
