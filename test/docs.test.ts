import t from 'tap'
import { buildTestApp } from './helper.js'
import { readClusterState } from './setup/cluster.js'
import { launchChromium } from './support/browser.js'

t.test('/docs/json is an OpenAPI 3.1 document generated from the route schemas', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject('/docs/json')
  t.equal(response.statusCode, 200)
  const doc = response.json()
  t.equal(doc.openapi, '3.1.0')
  t.equal(doc.info.title, 'todos-api')
  const operations = Object.values(doc.paths as Record<string, Record<string, { operationId?: string }>>).flatMap((path) =>
    Object.values(path).map((operation) => operation.operationId)
  )
  for (const id of ['listTodos', 'createTodo', 'getTodo', 'updateTodo', 'deleteTodo', 'deleteAllTodos']) t.ok(operations.includes(id), id)
  t.ok(doc.components.schemas.Todo, 'the Todo schema is a named component')
  t.ok(doc.components.schemas.Problem, 'so is Problem')
  const list = doc.paths['/todos'].get
  t.same(
    list.parameters.map((parameter: { name: string }) => parameter.name).sort(),
    ['completed', 'count', 'cursor', 'due_after', 'due_before', 'limit', 'q', 'sort']
  )
  t.ok(list.responses['400'], 'error responses are documented')
  const required = list.parameters.filter((parameter: { required?: boolean }) => parameter.required).map((parameter: { name: string }) => parameter.name)
  t.same(required, [], 'no query parameter is required: limit and count have defaults')
  t.match(list.parameters.find((parameter: { name: string }) => parameter.name === 'limit'), { schema: { default: 100 } })
  const update = doc.paths['/todos/{id}'].patch
  t.ok(update.responses['412'])
  t.equal(update.requestBody.content['application/json'].schema.additionalProperties, false)
})

const chromiumProblem = readClusterState().chromiumProblem

t.test('/docs renders the todos operations in a real browser, with no request leaving the service', { skip: chromiumProblem ?? false }, async (t) => {
  const { app } = await buildTestApp(t)
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const outside: string[] = []
  const errors: string[] = []
  await page.route('**/*', (route) => {
    const url = route.request().url()
    if (url.startsWith(address) || url.startsWith('data:')) return route.continue()
    outside.push(url)
    return route.abort()
  })
  page.on('pageerror', (error) => errors.push(error.message))
  const response = await page.goto(`${address}/docs`)
  t.equal(response?.status(), 200)
  await page.waitForSelector('.opblock-summary-path', { timeout: 20_000 })
  const paths = await page.$$eval('.opblock-summary-path', (nodes) => nodes.map((node) => node.textContent?.replace(/\u200b/g, '').trim()))
  t.ok(paths.includes('/todos'), `operations rendered: ${paths.join(' ')}`)
  t.ok(paths.includes('/todos/{id}'))
  const title = await page.textContent('.information-container .title')
  t.match(title, /todos-api/)
  t.same(outside, [], 'every asset came from the service itself')
  t.same(errors, [], 'no script errors')
})
