/** The service as server.ts builds it, on the given database, quiet logs. Prints its port on stdout. */
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'

const connectionString = process.argv[2] ?? ''
const config = loadConfig({ env: { NODE_ENV: 'production', DATABASE_URL: connectionString, LOG_LEVEL: 'warn' }, envFile: false })
const app = await buildApp({ config, connectionString })
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`)
