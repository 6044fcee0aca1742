import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { replaceLines } from './config-files.js'
import { watchOutput } from './output.js'
import { PROGRAMS } from './packages.js'
import { waitForPort } from './pgbouncer.js'
import { freePort } from './ports.js'

export const NGINX_CONF = fileURLToPath(new URL('../../docker/nginx/nginx.conf', import.meta.url))

export interface Nginx {
  port: number
  url: string
  output: string[]
}

/**
 * Debian's nginx running docker/nginx/nginx.conf in front of the replicas on `ports`:
 * only the listen port, the pid file and upstream.conf (the replicas' addresses, with
 * the same parameters as the shipped one) differ from the container. Stopped after the test.
 */
export async function startNginx(t: Test, ports: number[], replace: Array<[RegExp, string]> = []): Promise<Nginx> {
  if (!existsSync(PROGRAMS.nginx.path)) throw new Error(`${PROGRAMS.nginx.path} is missing: the test setup could not install ${PROGRAMS.nginx.pkg}`)
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'todos-api-nginx-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const shipped = await readFile(fileURLToPath(new URL('../../docker/nginx/upstream.conf', import.meta.url)), 'utf8')
  const parameters = /^server api:3000 resolve (.*);$/m.exec(shipped)?.[1]
  if (!parameters) throw new Error('docker/nginx/upstream.conf: no `server api:3000 resolve ...;` line')
  await writeFile(join(dir, 'upstream.conf'), ports.map((replica) => `server 127.0.0.1:${replica} ${parameters};\n`).join(''))
  const conf = replaceLines(await readFile(NGINX_CONF, 'utf8'), [
    [/^pid .*;$/, `pid ${join(dir, 'nginx.pid')};`],
    [/^(\s*)listen 8080;$/, `$1listen 127.0.0.1:${port};`],
    ...replace
  ])
  await writeFile(join(dir, 'nginx.conf'), conf)
  const child = spawn(PROGRAMS.nginx.path, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const { output } = watchOutput(child)
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      await exited
    }
  })
  await waitForPort(port, () => (child.exitCode !== null ? `nginx exited: ${output.join('\n')}` : undefined))
  return { port, url: `http://127.0.0.1:${port}`, output }
}
