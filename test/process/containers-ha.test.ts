/**
 * compose.ha.yaml and its files (docker/patroni, docker/haproxy), checked statically: no
 * Docker engine runs here. failover.test.ts runs the same patroni.yml, post-bootstrap.sh
 * and haproxy.cfg for real, with Debian's packages.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseEnv } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { ROOT } from '../helper.js'
import { parseIni } from '../support/config-files.js'
import { parseDockerfile } from '../support/dockerfile.js'

interface Service {
  image?: string
  build?: { context: string }
  command?: string[]
  environment?: Record<string, string | number>
  volumes?: string[]
  healthcheck?: { test: string[] }
  depends_on?: Record<string, { condition: string }>
  networks?: Record<string, { aliases?: string[] }> | string[]
  profiles?: string[]
}

const read = (path: string) => readFile(join(ROOT, path), 'utf8')
const haText = await read('compose.ha.yaml')
const ha = parse(haText, { merge: true, customTags: [{ tag: '!override', collection: 'map', resolve: (value: unknown) => value }] }) as { services: Record<string, Service>; volumes: Record<string, unknown> }
const scaled = parse(await read('compose.scaled.yaml'), { customTags: [{ tag: '!reset', collection: 'seq', resolve: (value: unknown) => value }] }) as { services: Record<string, Service> }
const patroni = parse(await read('docker/patroni/patroni.yml')) as {
  restapi: { listen: string }
  etcd3?: unknown
  etcd?: unknown
  bootstrap: { dcs: Record<string, unknown> & { postgresql: { parameters: Record<string, unknown> } }; post_bootstrap: string; pg_hba: string[] }
  postgresql: { listen: string; bin_dir: string; basebackup: unknown[] }
}
const haproxy = await read('docker/haproxy/haproxy.cfg')
const dotenv = parseEnv(await read('.env')) as Record<string, string>
const services = ha.services
const nodes = ['pg1', 'pg2'] as const

t.test('ha stack: two PostgreSQL nodes under Patroni, built from docker/patroni, each named and addressed as its service', async (t) => {
  const restPort = patroni.restapi.listen.split(':')[1]
  const pgPort = patroni.postgresql.listen.split(':')[1]
  for (const name of nodes) {
    const node = services[name]
    t.equal(node?.build?.context, 'docker/patroni', `${name} is built from docker/patroni`)
    t.equal(node?.environment?.PATRONI_NAME, name)
    t.equal(node?.environment?.PATRONI_RESTAPI_CONNECT_ADDRESS, `${name}:${restPort}`, 'reachable where patroni.yml listens')
    t.equal(node?.environment?.PATRONI_POSTGRESQL_CONNECT_ADDRESS, `${name}:${pgPort}`)
    t.equal(node?.environment?.PATRONI_ETCD3_HOSTS, 'etcd:2379', 'the etcd service, over the v3 API')
    t.equal(node?.environment?.PATRONI_SUPERUSER_USERNAME, '${POSTGRES_USER:?set POSTGRES_USER in .env}', 'the same user and password PgBouncer and the API use')
    t.match(String(node?.environment?.PATRONI_SUPERUSER_PASSWORD), /^\$\{POSTGRES_PASSWORD/)
    t.match(String(node?.environment?.PATRONI_REPLICATION_PASSWORD), /^\$\{PATRONI_REPLICATION_PASSWORD:\?/)
    t.match(String(node?.environment?.POSTGRES_DB), /^\$\{POSTGRES_DB/, 'the database post-bootstrap.sh creates')
    t.same(node?.volumes, [`${name}-data:/var/lib/postgresql`], 'a volume of its own')
    t.ok(`${name}-data` in ha.volumes, "a named volume")
    t.match((node?.healthcheck?.test ?? []).join(' '), new RegExp(`127\\.0\\.0\\.1:${restPort}/health`))
    t.equal(node?.depends_on?.etcd?.condition, 'service_healthy')
    t.same(node?.networks, ['database'], 'on the database network alone: the replicas cannot reach its REST API')
    t.match(String(node?.environment?.PATRONI_RESTAPI_PASSWORD), /^\$\{PATRONI_RESTAPI_PASSWORD:\?/, 'changes through the REST API need a password')
    t.ok(node?.environment?.PATRONI_RESTAPI_USERNAME)
  }
  t.ok(dotenv.PATRONI_RESTAPI_PASSWORD, '.env defines PATRONI_RESTAPI_PASSWORD')
  t.ok(dotenv.PATRONI_REPLICATION_PASSWORD, '.env defines PATRONI_REPLICATION_PASSWORD')
  const text = await read('docker/patroni/Dockerfile')
  const [image] = parseDockerfile(text).stages
  t.match(text, /^FROM debian:bookworm/m, "Debian 12's Patroni 3.0 and PostgreSQL 15, the versions the tests run")
  t.match(image?.runs.join('\n') ?? '', /apt-get install [^\n]*\bpatroni\b[^\n]*\bpostgresql-15\b/)
  t.ok(patroni.postgresql.bin_dir.startsWith('/usr/lib/postgresql/15/'), "bin_dir is Debian's PostgreSQL 15")
  t.match(text, /^USER postgres$/m, 'PostgreSQL refuses to run as root')
  t.match(text, /^COPY patroni\.yml post-bootstrap\.sh \/etc\/patroni\/$/m)
  t.match(text, /^WORKDIR \/etc\/patroni$/m, `where patroni.yml's post_bootstrap (${patroni.bootstrap.post_bootstrap}) is found`)
  t.equal(patroni.bootstrap.post_bootstrap, './post-bootstrap.sh')
})

t.test('ha stack: patroni.yml elects through etcd v3, replicates synchronously and fails over at once', async (t) => {
  t.ok(patroni.etcd3, 'etcd3: (etcd 3.4 serves no v2 API: `etcd:` would wait forever)')
  t.notOk(patroni.etcd)
  const dcs = patroni.bootstrap.dcs
  t.equal(dcs.synchronous_mode, true, 'no acknowledged write is lost in a failover')
  t.equal(dcs.primary_start_timeout, 0, 'a dead primary is not restarted in place: the standby takes over')
  t.equal(dcs.failsafe_mode, true, 'one etcd member down does not demote the primary')
  t.ok((dcs.ttl as number) <= 10 && (dcs.loop_wait as number) <= 2, 'a dead leader is noticed within seconds')
  t.ok((dcs.loop_wait as number) + 2 * (dcs.retry_timeout as number) <= (dcs.ttl as number), "Patroni's own rule: loop_wait + 2 × retry_timeout ≤ ttl")
  t.equal(dcs.postgresql.parameters.wal_log_hints, 'on', 'pg_rewind can bring the old primary back as a standby')
  t.same(patroni.postgresql.basebackup, [{ checkpoint: 'fast' }], 'a new standby does not wait for a spread checkpoint')
  t.ok(patroni.bootstrap.pg_hba.every((line) => line.endsWith('scram-sha-256')), 'passwords everywhere, never trust')
})

t.test('ha stack: HAProxy is the `db` of PgBouncer and of migrations, and sends connections to the primary alone', async (t) => {
  const proxy = services.haproxy
  t.match(proxy?.image ?? '', /^haproxy:2\.6/, "the major version the tests run (Debian 12's 2.6)")
  t.ok(proxy?.volumes?.includes('./docker/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro'))
  t.same((proxy?.networks as Record<string, { aliases?: string[] }> | undefined)?.default?.aliases, ['db'], 'named db on the compose network')
  t.ok(proxy?.networks && 'database' in proxy.networks, 'and on the database network, to reach the nodes')
  t.same(services.etcd?.networks, ['database'], 'etcd on the database network alone')
  for (const name of ['api', 'nginx', 'pgbouncer', 'prometheus']) t.notOk(services[name]?.networks, `${name} stays off the database network`)
  t.same(services.db?.profiles, ['single-server'], "compose.yaml's single server is left out")
  const ini = parseIni(await read('docker/pgbouncer/pgbouncer.ini'))
  t.equal(ini.databases?.['*'], `host=db port=${String(proxy?.environment?.HA_BIND).split(':')[1]}`, 'PgBouncer reaches HAProxy, unchanged')
  t.ok(Number(ini.pgbouncer?.server_login_retry) <= 2, 'PgBouncer tries the primary again within seconds of a failed login (the default waits 15 s)')
  t.match(String(scaled.services.api?.environment?.MIGRATION_DATABASE_URL), /@db:5432\//, 'migrations take the direct way: HAProxy to the primary, no pooler')
  for (const [index, name] of nodes.entries()) {
    t.equal(proxy?.environment?.[`HA_PG${index + 1}`], `${name}:5432`)
    t.equal(String(proxy?.environment?.[`HA_PG${index + 1}_REST_PORT`]), patroni.restapi.listen.split(':')[1], "checks ask the node's Patroni")
    t.match(haproxy, new RegExp(`^\\s*server ${name} "\\$\\{HA_PG${index + 1}\\}" check port "\\$\\{HA_PG${index + 1}_REST_PORT\\}"$`, 'm'))
  }
  t.match(haproxy, /^\s*option httpchk GET \/primary$/m, "a node is in only while its Patroni says it is the primary")
  t.match(haproxy, /^\s*default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions /m, 'a node that stops being the primary is out within a second, its connections cut')
  t.equal(services.pgbouncer?.depends_on && Object.keys(services.pgbouncer.depends_on).join(), 'haproxy', 'PgBouncer no longer waits for the single server')
  t.equal(services.api?.depends_on && Object.keys(services.api.depends_on).join(), 'pgbouncer')
  t.match(haText, /^ {4}depends_on: !override$/m, 'dependencies replaced, not merged with the single server')
})

t.test('ha stack: etcd on the v3 API, advertised under its service name, with a healthcheck', async (t) => {
  const etcd = services.etcd
  t.match(etcd?.image ?? '', /etcd:v3\.4\./, "the major version the tests run (Debian 12's 3.4)")
  t.ok(etcd?.command?.includes('--advertise-client-urls=http://etcd:2379'))
  t.match((etcd?.healthcheck?.test ?? []).join(' '), /etcdctl endpoint health/)
  t.ok(etcd?.volumes?.some((volume) => volume.startsWith('etcd-data:')))
})
