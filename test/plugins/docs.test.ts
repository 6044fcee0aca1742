import t from 'tap'
import { buildTestApp } from '../helper.js'
import { readClusterState } from '../setup/cluster.js'
import { launchChromium } from '../support/browser.js'

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
  for (const id of ['listLists', 'createList', 'getList', 'updateList', 'deleteList', 'listTodos', 'createTodo', 'getTodo', 'updateTodo', 'deleteTodo', 'deleteAllTodos']) t.ok(operations.includes(id), id)
  t.ok(doc.components.schemas.Todo, 'the Todo schema is a named component')
  t.ok(doc.components.schemas.Problem, 'so is Problem')
  const list = doc.paths['/todos'].get
  t.same(
    list.parameters.map((parameter: { name: string }) => parameter.name).sort(),
    ['completed', 'count', 'cursor', 'due_after', 'due_before', 'label', 'limit', 'list_id', 'parent_id', 'priority', 'q', 'sort']
  )
  t.ok(list.responses['400'], 'error responses are documented')
  const required = list.parameters.filter((parameter: { required?: boolean }) => parameter.required).map((parameter: { name: string }) => parameter.name)
  t.same(required, [], 'no query parameter is required: limit and count have defaults')
  t.match(list.parameters.find((parameter: { name: string }) => parameter.name === 'limit'), { schema: { default: 100 } })
  const update = doc.paths['/todos/{id}'].patch
  t.ok(update.responses['412'])
  t.equal(update.requestBody.content['application/json'].schema.additionalProperties, false)
  t.ok(update.requestBody.content['application/merge-patch+json'], 'JSON Merge Patch is a documented body type')
  t.ok(update.parameters.some((parameter: { in: string; name: string }) => parameter.in === 'header' && parameter.name === 'if-match'), 'If-Match is documented')
  t.same(Object.keys(update.responses['412'].content), ['application/problem+json'], 'errors are problem+json')
  t.ok(update.responses['504'] && update.responses['413'] && update.responses['415'], 'what a write can also answer')
  const create = doc.paths['/todos'].post
  t.same(Object.keys(create.responses['201'].headers).sort(), ['ETag', 'Idempotent-Replayed', 'Location'])
  t.ok(create.parameters.some((parameter: { name: string }) => parameter.name === 'idempotency-key'), 'Idempotency-Key is documented')
  t.same(Object.keys(list.responses['200'].headers).sort(), ['Link', 'X-Total-Count'])
  t.ok(doc.paths['/todos/{id}'].get.parameters.some((parameter: { name: string }) => parameter.name === 'if-none-match'))
  t.ok(list.responses['503'].headers['Retry-After'])
  t.ok(list.responses['401'].headers['WWW-Authenticate'])
})

t.test('the OpenAPI document declares the bearer scheme on every protected operation, and only there', async (t) => {
  const { app } = await buildTestApp(t, { env: { AUTH_MODE: 'required' } })
  const doc = (await app.inject('/docs/json')).json() as {
    components: { securitySchemes: Record<string, unknown> }
    paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>>
  }
  t.match(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer' })
  const publicOperations = ['get /', 'post /users', 'post /tokens', 'get /health/live', 'get /health/ready']
  let protectedCount = 0
  for (const [path, operations] of Object.entries(doc.paths)) {
    if (path.startsWith('/docs')) continue
    for (const [method, operation] of Object.entries(operations)) {
      const name = `${method} ${path}`
      if (publicOperations.includes(name)) {
        t.equal(operation.security, undefined, `${name} is public`)
      } else {
        protectedCount++
        t.same(operation.security, [{ bearerAuth: [] }], `${name} needs a bearer token`)
        t.ok(operation.responses['401'], `${name} documents its 401`)
      }
    }
  }
  t.ok(protectedCount >= 16, `${protectedCount} protected operations`)
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

t.test('/docs in a real browser: "Authorize" with a token, then "Try it out" lists that user\'s todos', { skip: chromiumProblem ?? false }, async (t) => {
  const { app } = await buildTestApp(t, { env: { AUTH_MODE: 'required' } })
  await app.inject({ method: 'POST', url: '/users', payload: { email: 'ada@example.com', name: 'Ada', password: 'correct horse battery' } })
  const { token } = (await app.inject({ method: 'POST', url: '/tokens', payload: { email: 'ada@example.com', password: 'correct horse battery' } })).json() as { token: string }
  await app.inject({ method: 'POST', url: '/todos', headers: { authorization: `Bearer ${token}` }, payload: { title: 'visible through the docs' } })
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(error.message))
  await page.goto(`${address}/docs#/todos/listTodos`)
  const operation = page.locator('#operations-todos-listTodos')
  await operation.locator('.opblock-summary').first().waitFor({ timeout: 20_000 })
  if (!(await operation.locator('button.execute').isVisible())) await operation.locator('.opblock-summary').first().click()

  const execute = async () => {
    // Clear the previous answer first, so the one read is this request's.
    if (await operation.locator('.btn-clear').isVisible()) await operation.locator('.btn-clear').click()
    await operation.locator('button.execute').click()
    const status = operation.locator('.live-responses-table tbody .response-col_status').first()
    await status.waitFor({ timeout: 20_000 })
    const text = (await status.textContent())?.trim() ?? ''
    const body = (await operation.locator('.live-responses-table tbody .response-col_description').first().textContent()) ?? ''
    return { text, body }
  }
  // Try-it-out is on from the start (tryItOutEnabled): the Execute button is there.
  const before = await execute()
  t.match(before.text, /^401/, `without a token: ${before.text}`)

  await page.locator('button.btn.authorize').first().click()
  await page.locator('.modal-ux input').first().fill(token)
  await page.locator('.modal-ux button.authorize').first().click()
  await page.locator('.modal-ux button.btn-done').first().click()
  const after = await execute()
  t.match(after.text, /^200/, `with the token: ${after.text}`)
  t.match(after.body, /visible through the docs/, "the answer is that user's list")
  t.same(errors, [], 'no script errors')
})
