/**
 * Imports between the folders of src/ run one way (make test checks it: npm run lint:imports):
 *
 *   entries (server, boot, otel, primary, app, prepare-database, metrics-server, cli/, dev/run)
 *     -> plugins/  accounts/ -> resources/ -> sync/   dev/
 *     -> db/
 *     -> lib/
 *
 * lib/ is the bottom (it may read the Config type); db/ knows only lib/; accounts/ and
 * the cross-cutting plugins/ know db/ and lib/; resources/ also know accounts/ (the owner
 * of a statement); sync/ (GET /changes, GET /events) reads every resource; dev/ (make dev, demo data) may read resources/. No file imports an
 * entry, and no two files import each other, however far round.
 */
const ENTRIES = ['^src/(app|server|boot|primary|prepare-database|metrics-server|otel)\\.ts$', '^src/cli/', '^src/dev/run\\.ts$']

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'A cycle of imports, however long', from: {}, to: { circular: true } },
    { name: 'lib-is-the-bottom', severity: 'error', from: { path: '^src/lib/' }, to: { path: '^src/', pathNot: ['^src/lib/', '^src/config\\.ts$'] } },
    { name: 'db-knows-lib-only', severity: 'error', from: { path: '^src/db/' }, to: { path: '^src/(accounts|resources|sync|plugins|dev|cli)/' } },
    { name: 'accounts-below-resources', severity: 'error', from: { path: '^src/accounts/' }, to: { path: '^src/(resources|sync|plugins|dev|cli)/' } },
    { name: 'plugins-are-cross-cutting', severity: 'error', from: { path: '^src/plugins/' }, to: { path: '^src/(accounts|resources|sync|dev|cli)/' } },
    { name: 'resources-below-sync', severity: 'error', from: { path: '^src/resources/' }, to: { path: '^src/(sync|plugins|dev|cli)/' } },
    { name: 'sync-below-entries', severity: 'error', from: { path: '^src/sync/' }, to: { path: '^src/(plugins|dev|cli)/' } },
    { name: 'dev-below-entries', severity: 'error', from: { path: '^src/dev/' }, to: { path: '^src/(plugins|cli|accounts)/' } },
    {
      name: 'only-entries-import-entries',
      severity: 'error',
      comment: 'The entries (server, primary, the boot sequence, make dev, the command-line tools) are not imported by the layers',
      from: { path: '^src/', pathNot: ENTRIES },
      to: { path: ENTRIES }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] }
  }
}
