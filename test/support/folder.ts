import { readdir } from 'node:fs/promises'

/**
 * Imports every `*.test.ts` file of `folder`, in name order, into this process: their tests
 * run one after another in it, as they would in processes of their own. A test process
 * costs about 5 s of CPU before its first test (tsx's module hooks, the app's modules, the
 * first app's compiled schemas and JIT), which the files of a folder then pay once.
 */
export async function importTests(folder: URL): Promise<void> {
  const files = (await readdir(folder)).filter((name) => name.endsWith('.test.ts')).sort()
  if (files.length === 0) throw new Error(`no test files in ${folder.pathname}`)
  for (const file of files) await import(new URL(file, folder).href)
}
