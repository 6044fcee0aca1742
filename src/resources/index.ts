import { readdir } from 'node:fs/promises'
import type { AnyResource } from './engine/define.js'

/**
 * Every resource the service serves: each folder here but engine/, whose index.ts exports
 * its definition (engine/define.ts), in the order of their names. The routes, the docs'
 * tags, the root document's links, the demo data and the account texts all come from
 * this list, so adding a resource is a migration and a folder.
 */
export async function loadResources(): Promise<AnyResource[]> {
  const entries = await readdir(new URL('.', import.meta.url), { withFileTypes: true })
  const names = entries.filter((entry) => entry.isDirectory() && entry.name !== 'engine').map((entry) => entry.name)
  return Promise.all(names.sort().map(async (name) => ((await import(`./${name}/index.js`)) as { default: AnyResource }).default))
}
