// The reliability suite (issue #16): `npm run test:reliability` (CI part) and
// `RECFORGE_RELIABILITY=nightly npm run test:reliability` (everything: soak, scale, the whole hostile corpus
// through the pipeline, more kills). See README "Reliability".
const path = require('node:path');
const base = require('../../jest.config.js');

const nightly = process.env.RECFORGE_RELIABILITY === 'nightly';
const root = path.join(__dirname, '..', '..');

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  rootDir: root,
  testMatch: [
    '<rootDir>/test/reliability/**/*.test.ts',
    // The multi-process races of the privacy ledger and of bundled-data generation live with their units.
    '<rootDir>/test/unit/privacy-ledger.test.ts',
    '<rootDir>/test/unit/datagen-race.test.ts',
  ],
  // Soak and scale take tens of minutes to hours: nightly only.
  testPathIgnorePatterns: ['/node_modules/', ...(nightly ? [] : ['\\.nightly\\.test\\.ts$'])],
  // Every test here starts processes, servers and DuckDB files, and measures time bounds: one at a time.
  maxWorkers: 1,
  testTimeout: 900000,
  globalTeardown: '<rootDir>/test/reliability/support/summary.ts',
};
