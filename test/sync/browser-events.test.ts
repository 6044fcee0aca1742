/**
 * GET /events from a real browser: a page in headless Chromium (another origin than the
 * API) runs docs/sync.md's `follow()` as written, with a ticket, and shows what another
 * client writes.
 */
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { ROOT, listeningTestApp, usersWithTokens } from '../helper.js'
import { readClusterState } from '../setup/cluster.js'
import { launchChromium } from '../support/browser.js'

const doc = await readFile(join(ROOT, 'docs/sync.md'), 'utf8')
const follow = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1] ?? '').find((block) => block.includes('EventSource')) ?? ''

const page = (script: string) => `<!doctype html><meta charset="utf-8"><title>todos</title><ul id="todos"></ul>
<script>
${script}
window.start = (api, token) => follow(api, token, undefined, (change) => {
  const item = document.createElement('li')
  item.textContent = change.deleted ? change.type + ' ' + change.id + ' deleted' : change.data.title
  document.getElementById('todos').append(item)
})
</script>`

t.test("docs/sync.md's follow() in Chromium: a todo another client creates shows within a second, also after the stream was ended", { skip: readClusterState().chromiumProblem ?? false }, async (t) => {
  t.match(follow, /new EventSource\(/, 'docs/sync.md has the browser example')
  const { app, http, db, url: api } = await listeningTestApp(t, { env: { AUTH_MODE: 'required' } })
  const { ada } = await usersWithTokens(db, ['ada'])
  const token = ada.headers.authorization?.replace('Bearer ', '') as string
  const asAda = http(ada.headers)

  const pages = createServer((_request, response) => response.writeHead(200, { 'content-type': 'text/html' }).end(page(follow)))
  await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => pages.close(resolve)))
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const tab = await browser.newPage()
  const errors: string[] = []
  tab.on('pageerror', (error) => errors.push(error.message))
  // localhost and 127.0.0.1 are different origins: the stream is cross-origin, as a real front end's would be.
  await tab.goto(`http://localhost:${(pages.address() as AddressInfo).port}/`)
  await tab.evaluate(`start(${JSON.stringify(api)}, ${JSON.stringify(token)})`)
  const deadline = Date.now() + 10_000
  while (app.events.streams === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(app.events.streams, 1, 'the page holds a stream')

  const listed = (title: string) => `[...document.querySelectorAll('li')].some((item) => item.textContent === ${JSON.stringify(title)})`
  const shown = async (title: string) => {
    const written = Date.now()
    await asAda.create('/todos', { title })
    await tab.waitForFunction(listed(title), undefined, { timeout: 1000 })
    return Date.now() - written
  }
  const first = await shown('written elsewhere')
  t.ok(first < 1000, `shown ${first} ms after the write`)

  // The instance ends the stream (as when it drains); a write meanwhile is not lost.
  app.events.closeAll()
  await asAda.create('/todos', { title: 'while reconnecting' })
  await tab.waitForFunction(listed('while reconnecting'), undefined, { timeout: 5000 })
  const second = await shown('after the reconnect')
  t.ok(second < 1000, `shown ${second} ms after the write, on a stream opened with a new ticket`)
  const items = await tab.$$eval('li', (list) => list.map((item) => item.textContent))
  t.same(items, ['written elsewhere', 'while reconnecting', 'after the reconnect'], 'each once, in order')
  t.same(errors, [], 'no error on the page')
})
