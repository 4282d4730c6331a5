// libtensorflow (tfjs-node) logs its oneDNN/CPU-feature banner at load unless this is in the environment when a
// process starts; jest's workers inherit it from here.
process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.(t|j)s$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  // hyparquet (the independent Parquet reader the tests use) ships ES modules only.
  transformIgnorePatterns: ['/node_modules/(?!hyparquet/)'],
  // Integration tests start real Temporal servers and DuckDB files; two cores, so keep parallelism modest.
  maxWorkers: 2,
  testTimeout: 120000,
  setupFiles: ['<rootDir>/test/helpers/jest-setup.ts'],
  modulePathIgnorePatterns: ['<rootDir>/dist/', '<rootDir>/data/'],
  // The reliability suite has its own runner (npm run test:reliability, test/reliability/jest.config.js).
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/reliability/'],
};
