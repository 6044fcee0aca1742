/**
 * `make dev` as a person uses it: started by make in a terminal, stopped with Ctrl-C
 * (SIGINT to the whole foreground process group), edited while it runs.
 */
import { appendFile, cp, symlink, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { ROOT, embeddedClusterDir, freePort, runScript, tempDir } from '../helper.js'
import { devEnv, makeDev, messages, postmaster } from '../support/make-dev.js'

t.test('a change to the code restarts the service on the same PostgreSQL server', async (t) => {
  // A copy of the project, so the test can edit a file without touching the real one.
  const project = await tempDir(t)
  // Timestamps kept: make would reinstall if package.json looked newer than node_modules.
  for (const entry of ['src', 'migrations', 'Makefile', 'package.json', 'package-lock.json', 'tsconfig.json']) {
    await cp(join(ROOT, entry), join(project, entry), { recursive: true, preserveTimestamps: true })
  }
  await symlink(join(ROOT, 'node_modules'), join(project, 'node_modules'))
  const dataDir = await embeddedClusterDir(t)
  const env = await devEnv(dataDir)
  const dev = await makeDev(t, project, env)
  const first = await dev.waitFor(/Server listening/)
  const pid = await postmaster(dataDir)
  t.ok(pid)

  // A new migration, as `make migration` makes one and its author fills it in: never
  // applied behind the author's back, not even by a restart the code change causes.
  await writeFile(join(project, 'migrations/0099_dev_added.sql'), '-- Up Migration\nCREATE TABLE dev_added (id int);\n-- Down Migration\nDROP TABLE dev_added;\n')
  const editedAt = Date.now()
  await appendFile(join(project, 'src/plugins/docs.ts'), '\n// edited by test/dev/dev.test.ts\n')
  await dev.waitFor(/Server listening/, first + 1)
  t.comment(`serving again ${Date.now() - editedAt} ms after the edit`)
  t.match(messages(dev.output).join('\n'), /src\/plugins\/docs\.ts changed; restarting the service/)
  t.notMatch(messages(dev.output).join('\n'), /migrations\/0099_dev_added\.sql changed/, 'a migration file does not restart the service')
  t.equal(await postmaster(dataDir), pid, 'the same PostgreSQL server process')
  const pending = await fetch(`http://127.0.0.1:${env.PORT}/health/ready`)
  t.equal(pending.status, 503, 'the restart did not apply the new migration: readiness says so')
  t.match(await pending.json(), { checks: { migrations: { code: 'MIGRATIONS_PENDING' } } })
  await dev.waitFor(/pending: 0099_dev_added/)
  const migrated = await runScript(t, 'cli/migrate.ts', ['up'], env, { cwd: project, root: project })
  t.equal(migrated.code, 0, migrated.stderr)
  t.match(migrated.stderr, /applied 0099_dev_added/, 'make migrate applies it')
  t.equal((await fetch(`http://127.0.0.1:${env.PORT}/health/ready`)).status, 200)

  dev.interrupt()
  await dev.exited // make's own status after an interrupt is make's business
  t.equal(messages(dev.output).at(-1), 'make dev: shutdown complete')
  t.equal(await postmaster(dataDir), undefined)
})

t.test('a fatal start-up error ends make dev, non-zero, with the error as the last line', async (t) => {
  const dataDir = await embeddedClusterDir(t)
  const env = await devEnv(dataDir)
  const taken = createServer().listen(Number(env.PORT), '127.0.0.1')
  t.teardown(() => taken.close())
  await new Promise((resolve) => taken.once('listening', resolve))

  const dev = await makeDev(t, ROOT, env)
  const started = Date.now()
  const code = await dev.exited
  t.comment(`ended ${Date.now() - started} ms after start`)
  t.not(code, 0)
  const said = messages(dev.output)
  t.match(said.at(-1), new RegExp(`startup failed: port ${env.PORT} on 127.0.0.1 is already in use.*PORT=`))
  t.equal(await postmaster(dataDir), undefined, 'and the embedded PostgreSQL it started is stopped')

  const bad = await makeDev(t, ROOT, { ...env, PORT: 'abc' })
  t.not(await bad.exited, 0)
  t.match(bad.output.join('\n'), /PORT must be integer/)

  const unreachable = await makeDev(t, ROOT, { ...env, DATABASE_URL: `postgres://u:p@127.0.0.1:${await freePort()}/x`, DATABASE_WAIT_SECONDS: '1' })
  t.not(await unreachable.exited, 0)
  t.match(messages(unreachable.output).at(-1), /startup failed: database u@127\.0\.0\.1:\d+\/x did not become ready within 1 s/)
})
