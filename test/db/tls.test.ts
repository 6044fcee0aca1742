/**
 * A remote database over TLS, as managed PostgreSQL services run it: the embedded server
 * with ssl on and a certificate from a CA of the test's own. `make migrate` (the migrate
 * command) with `?sslmode=require`, and with `?sslmode=verify-full&sslrootcert=<CA file>`,
 * with libpq's meaning for each.
 */
import { execFile } from 'node:child_process'
import { chown, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { postgresUser } from '../../src/dev/embedded-host.js'
import { runScript, sql, tempDir } from '../helper.js'
import { PrivateCluster } from '../support/private-cluster.js'

const run = promisify(execFile)

t.test('make migrate against a TLS database: sslmode=require, and verify-full with a CA file', async (t) => {
  const cluster = await PrivateCluster.create(t)
  // A CA and a server certificate for localhost / 127.0.0.1, in a private directory removed afterwards.
  const keys = await tempDir(t)
  const openssl = (...args: string[]) => run('openssl', args, { cwd: keys })
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=todos-api test CA')
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost')
  await writeFile(join(keys, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  await openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '1', '-extfile', 'san.ext')
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other-ca.crt', '-days', '1', '-subj', '/CN=someone else')

  // Into the server's data directory, readable by the server alone, and TLS switched on.
  const [{ dir } = { dir: '' }] = await sql<{ dir: string }>(cluster.connectionString, "SELECT current_setting('data_directory') AS dir")
  const runAs = await postgresUser()
  for (const [name, mode] of [['server.crt', 0o644], ['server.key', 0o600]] as const) {
    await writeFile(join(dir, name), await readFile(join(keys, name)), { mode })
    if (runAs.uid !== undefined) await chown(join(dir, name), runAs.uid, runAs.gid ?? runAs.uid)
  }
  await sql(cluster.connectionString, "ALTER SYSTEM SET ssl = on")
  await sql(cluster.connectionString, 'SELECT pg_reload_conf()')

  const required = `${cluster.connectionString}?sslmode=require`
  const up = await runScript(t, 'cli/migrate.ts', ['up'], { DATABASE_URL: required })
  t.equal(up.code, 0, up.stderr)
  t.match(up.stderr, /applied 0001_create_todos/)
  t.notMatch(up.stderr, /SECURITY WARNING/, "libpq's meaning of require, without node-postgres' warning")

  const verified = `${cluster.connectionString}?sslmode=verify-full&sslrootcert=${encodeURIComponent(join(keys, 'ca.crt'))}`
  const status = await runScript(t, 'cli/migrate.ts', ['status'], { DATABASE_URL: verified })
  t.equal(status.code, 0, status.stderr)
  t.match(status.stdout, /^applied +0001_create_todos/m)
  const [session] = await sql<{ ssl: boolean }>(`${verified}&uselibpqcompat=true`, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')
  t.same(session, { ssl: true }, 'the connection is encrypted')

  const wrongCa = `${cluster.connectionString}?sslmode=verify-full&sslrootcert=${encodeURIComponent(join(keys, 'other-ca.crt'))}`
  const refused = await runScript(t, 'cli/migrate.ts', ['status'], { DATABASE_URL: wrongCa, DATABASE_WAIT_SECONDS: '0' })
  t.equal(refused.code, 1, 'a certificate from another CA is refused with verify-full')
  t.match(refused.stderr, /certificate/i)
})
