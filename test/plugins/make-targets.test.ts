/**
 * The make targets and npm scripts an operator types: their exit codes and what they say.
 */
import { execFile } from 'node:child_process'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { ROOT, freshDatabase, sql, tempDir } from '../helper.js'

const sh = promisify(execFile)

t.test('npm run -s migrate:status exits with the tool\'s code: 0 up to date, 3 pending, 4 drift', async (t) => {
  const status = (db: string) =>
    sh('npm', ['run', '-s', 'migrate:status'], { cwd: ROOT, env: { ...process.env, NODE_ENV: 'test', DATABASE_URL: db } }).then(
      () => 0,
      (error: { code: number }) => error.code
    )
  t.equal(await status(await freshDatabase(t, { migrated: false })), 3, 'pending')
  const db = await freshDatabase(t)
  t.equal(await status(db), 0, 'up to date')
  await sql(db, "INSERT INTO pgmigrations (name, run_on) VALUES ('0000_gone', now())")
  t.equal(await status(db), 4, 'drift')
})

t.test('make up-scaled and make up-ha refuse a Compose too old for their files, saying which they need', async (t) => {
  const bin = await tempDir(t)
  const calls = join(bin, 'calls')
  const fakeDocker = (version: string) =>
    writeFile(join(bin, 'docker'), `#!/bin/sh\nif [ "$1 $2" = "compose version" ]; then echo "${version}"; exit 0; fi\necho "$@" >> ${calls}\n`).then(() => chmod(join(bin, 'docker'), 0o755))
  const make = (target = 'up-scaled') =>
    sh('make', ['-s', target], { cwd: ROOT, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } }).then((r) => ({ code: 0, ...r }), (error: { code: number; stdout: string; stderr: string }) => error)
  await fakeDocker('1.29.2')
  const old = await make()
  t.not(old.code, 0)
  t.match(old.stderr, /needs Docker Compose v2 2\.24\.0 or later \(found: 1\.29\.2\)/)
  await fakeDocker('v2.24.1')
  const fine = await make()
  t.equal(fine.code, 0, fine.stderr)
  const { stdout } = await sh('cat', [calls])
  t.match(stdout, /^compose -f compose\.yaml -f compose\.scaled\.yaml up --detach --build --wait --scale api=2$/m)
  // compose.ha.yaml's !override came in 2.24.4.
  t.match((await make('up-ha')).stderr, /compose\.ha\.yaml needs Docker Compose v2 2\.24\.4 or later \(found: 2\.24\.1\)/)
  await fakeDocker('v2.24.4')
  t.equal((await make('up-ha')).code, 0)
  t.match((await sh('cat', [calls])).stdout, /^compose -f compose\.yaml -f compose\.scaled\.yaml -f compose\.ha\.yaml up --detach --build --wait --scale api=2$/m)
})

t.test('make start says what it runs: the compiled server with the settings of .env, not a container', async (t) => {
  const { stdout } = await sh('make', ['-s', 'help'], { cwd: ROOT })
  const line = stdout.split('\n').find((entry) => /make start\b/.test(entry)) ?? ''
  t.notMatch(line, /as the container does/, 'it does not claim to run as the container does')
  t.match(line, /\.env/, 'it says where its settings come from')
})
