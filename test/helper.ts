/**
 * What test files use, from one place: a fresh database and an app on it with a ready
 * client (support/app.ts, support/database.ts), and the real server or a tool as a
 * process of its own (support/processes.ts).
 */
export { buildTestApp, expectProblem, listeningTestApp, testConfig, type AnswerLike } from './support/app.js'
export { freshDatabase, insertTodos, sql, usersWithTokens, withClient } from './support/database.js'
export { freePort } from './support/ports.js'
export { ROOT, embeddedClusterDir, runScript, startServer, tempDir, type ServerProcess } from './support/processes.js'
