/**
 * The Todo-Backend specification's scenarios, run the way its browser runner runs them:
 * from a page on another origin, with XMLHttpRequest sending `Content-Type:
 * application/json` on every request (bodiless GETs and DELETEs too, as jQuery does with
 * a `contentType` option), so CORS preflights and empty JSON bodies are exercised for real.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { buildTestApp } from '../helper.js'
import { readClusterState } from '../setup/cluster.js'
import { launchChromium } from '../support/browser.js'

const RUNNER = String.raw`
<!doctype html><meta charset="utf-8"><title>todo-backend scenarios</title>
<script>
function ajax(method, url, data) {
  return new Promise(function (resolve, reject) {
    var xhr = new XMLHttpRequest()
    xhr.open(method, url)
    xhr.setRequestHeader('Content-Type', 'application/json')
    xhr.onload = function () {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.responseText)
      else reject(new Error(method + ' ' + url + ': ' + xhr.status + ' ' + xhr.responseText))
    }
    xhr.onerror = function () { reject(new Error(method + ' ' + url + ': network or CORS failure')) }
    xhr.send(data === undefined ? undefined : JSON.stringify(data))
  })
}
function json(text) { return JSON.parse(text) }
function expect(condition, message) { if (!condition) throw new Error(message) }

async function scenarios(root) {
  var get = function (url) { return ajax('GET', url).then(json) }
  var post = function (data) { return ajax('POST', root, data).then(json) }
  var patch = function (url, data) { return ajax('PATCH', url, data).then(json) }
  var del = function (url) { return ajax('DELETE', url) }
  var fresh = function (params) { return post(Object.assign({ title: 'blah' }, params || {})).then(function (todo) { return todo.url }) }
  var results = []
  async function spec(name, body) {
    try { await body(); results.push({ name: name, ok: true }) }
    catch (error) { results.push({ name: name, ok: false, error: String(error && error.message || error) }) }
  }
  await spec('the api root responds to a GET', async function () { await ajax('GET', root) })
  await spec('the api root responds to a POST with the todo which was posted to it', async function () {
    expect((await post({ title: 'a todo' })).title === 'a todo', 'title echoed')
  })
  await spec('the api root responds successfully to a DELETE', async function () { await del(root) })
  await spec('after a DELETE the api root responds to a GET with an empty array', async function () {
    await del(root); var list = await get(root); expect(Array.isArray(list) && list.length === 0, 'empty array')
  })
  await spec('adds a new todo to the list of todos at the root url', async function () {
    await del(root); await post({ title: 'walk the dog' }); var list = await get(root)
    expect(list.length === 1 && list[0].title === 'walk the dog', 'one todo, the posted one')
  })
  await spec('sets up a new todo as initially not completed', async function () {
    await del(root); expect((await post({ title: 'blah' })).completed === false, 'not completed'); expect((await get(root))[0].completed === false, 'in the list too')
  })
  await spec('each new todo has a url', async function () {
    await del(root); expect(typeof (await post({ title: 'blah' })).url === 'string', 'url'); expect(typeof (await get(root))[0].url === 'string', 'in the list too')
  })
  await spec('each new todo has a url, which returns a todo', async function () {
    await del(root); var todo = await post({ title: 'my todo' }); expect((await get(todo.url)).title === 'my todo', 'fetched by url')
  })
  await spec('can navigate from a list of todos to an individual todo via urls', async function () {
    await del(root); await Promise.all([post({ title: 'todo the first' }), post({ title: 'todo the second' })])
    var list = await get(root); expect(list.length === 2, 'two todos'); expect(typeof (await get(list[0].url)).title === 'string', 'has a title')
  })
  await spec("can change the todo's title by PATCHing to the todo's url", async function () {
    await del(root); var url = await fresh({ title: 'initial title' }); expect((await patch(url, { title: 'bathe the cat' })).title === 'bathe the cat', 'patched')
  })
  await spec("can change the todo's completedness by PATCHing to the todo's url", async function () {
    await del(root); var url = await fresh(); expect((await patch(url, { completed: true })).completed === true, 'completed')
  })
  await spec('changes to a todo are persisted and show up when re-fetching the todo', async function () {
    await del(root); var url = await fresh(); var todo = await patch(url, { title: 'changed title', completed: true })
    var again = await get(todo.url); expect(again.completed === true && again.title === 'changed title', 'refetched')
    var list = await get(root); expect(list.length === 1 && list[0].completed === true && list[0].title === 'changed title', 'in the list')
  })
  await spec("can delete a todo making a DELETE request to the todo's url", async function () {
    await del(root); var url = await fresh(); await del(url); expect((await get(root)).length === 0, 'gone')
  })
  await spec('can create a todo with an order field', async function () {
    expect((await post({ title: 'blah', order: 523 })).order === 523, 'order 523')
  })
  await spec('can PATCH a todo to change its order', async function () {
    var url = await fresh({ order: 10 }); expect((await patch(url, { order: 95 })).order === 95, 'order 95')
  })
  await spec("remembers changes to a todo's order", async function () {
    var url = await fresh({ order: 10 }); var todo = await patch(url, { order: 95 }); expect((await get(todo.url)).order === 95, 'order kept')
  })
  return results
}
</script>`

const chromiumProblem = readClusterState().chromiumProblem

t.test('the Todo-Backend scenarios pass from a browser page on another origin', { skip: chromiumProblem ?? false }, async (t) => {
  const { app } = await buildTestApp(t)
  const api = await app.listen({ host: '127.0.0.1', port: 0 })

  const pages = createServer((_request, response) => response.writeHead(200, { 'content-type': 'text/html' }).end(RUNNER))
  await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => pages.close(resolve)))
  // localhost and 127.0.0.1 are different origins: every call is cross-origin.
  const pageUrl = `http://localhost:${(pages.address() as AddressInfo).port}/`

  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.goto(pageUrl)
  const results = (await page.evaluate(`scenarios(${JSON.stringify(`${api}/todos`)})`)) as Array<{ name: string; ok: boolean; error?: string }>
  t.equal(results.length, 16)
  for (const result of results) t.ok(result.ok, `${result.name}${result.error ? `: ${result.error}` : ''}`)
})
