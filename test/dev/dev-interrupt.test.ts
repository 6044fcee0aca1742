/**
 * `make dev` stopped with Ctrl-C (SIGINT to the whole foreground process group, as a
 * terminal sends it), four times over: a race between the runner and the service would
 * show as a forced exit or a PostgreSQL left running.
 */
import t from 'tap'
import { ROOT, embeddedClusterDir } from '../helper.js'
import { devEnv, makeDev, messages, postmaster } from '../support/make-dev.js'

t.test('Ctrl-C, four times: always one graceful stop, and the embedded PostgreSQL stops with it', async (t) => {
  const dataDir = await embeddedClusterDir(t)
  const env = await devEnv(dataDir)
  for (let round = 1; round <= 4; round++) {
    const dev = await makeDev(t, ROOT, env)
    await dev.waitFor(/Server listening/)
    t.ok(await postmaster(dataDir), `round ${round}: PostgreSQL runs`)
    dev.interrupt()
    await dev.exited
    const said = messages(dev.output)
    t.ok(said.includes('shutdown complete'), `round ${round}: the service shut down gracefully`)
    t.notOk(said.some((line) => /second SIG|killed by timeout/.test(line)), `round ${round}: never a forced exit`)
    t.equal(said.filter((line) => line === 'shutting down').length, 1, `round ${round}: one signal reached the service`)
    t.equal(said.at(-1), 'make dev: shutdown complete', `round ${round}: the last line says it is done`)
    t.equal(await postmaster(dataDir), undefined, `round ${round}: no PostgreSQL left running`)
  }
})
