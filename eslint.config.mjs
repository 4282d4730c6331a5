import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Import boundaries: the layers depend downwards only.
 *   contracts   ← everything (it imports nothing of ours)
 *   lib         infrastructure (storage, DuckDB, config, Temporal tooling, observability): contracts only
 *   analytics, models, privacy, evaluation, registry, datasets: domain code: contracts, lib, each other
 *   activities  thin adapters over the domain; one activity never imports another (shared code: activities/support)
 *   workflows   deterministic orchestration: contracts and activity *types* only
 *   worker, cli, scripts, bench, test: anything
 * test/unit/import-boundaries.test.ts shows each rule refusing a forbidden import.
 */
/** An import that climbs out of its folder into one of these top-level folders (packages never match). */
const into = (names) => `^(\\.\\./)+(${names.join('|')})(/|$)`;
const upper = ['activities', 'workflows', 'worker', 'cli', 'scripts', 'bench'];
const domain = ['analytics', 'models', 'privacy', 'evaluation', 'registry', 'datasets'];
const restrict = (patterns) => ({
  '@typescript-eslint/no-restricted-imports': ['error', { patterns }],
});
const noOtherActivity = (regex) => ({
  regex,
  message: 'an activity never imports another activity: move what they share to activities/support.',
});

export const boundaries = [
  {
    files: ['contracts/**/*.ts'],
    rules: restrict([
      { regex: '^\\.\\./', message: 'contracts/ is the bottom layer: it imports nothing of the project.' },
    ]),
  },
  {
    files: ['lib/**/*.ts'],
    rules: restrict([
      {
        regex: into([...upper, ...domain]),
        message: 'lib/ holds infrastructure only: it may import contracts/ and lib/.',
      },
    ]),
  },
  {
    files: domain.map((d) => `${d}/**/*.ts`),
    rules: restrict([
      { regex: into(upper), message: 'domain code never imports activities, workflows or entry points.' },
    ]),
  },
  {
    files: ['workflows/**/*.ts'],
    rules: restrict([
      {
        regex: into(['lib', 'worker', 'cli', 'scripts', 'bench', ...domain]),
        message: 'workflows run in the deterministic sandbox: contracts/ and activity types only.',
      },
      {
        regex: into(['activities']),
        allowTypeImports: true,
        message: 'workflows may import activity *types* only (import type …).',
      },
    ]),
  },
  {
    // An activity file (activities/<x>.ts; not the adapter registry index.ts): './<y>' only for support.
    files: ['activities/*.ts'],
    ignores: ['activities/index.ts'],
    rules: restrict([noOtherActivity('^\\./(?!support(/|$))')]),
  },
  {
    // A file in an activity's own folder (activities/clean/…): its folder, support, and the layers below.
    files: ['activities/*/**/*.ts'],
    ignores: ['activities/support/**'],
    rules: restrict([noOtherActivity('^\\.\\./(?!support(/|$)|\\.\\./)')]),
  },
  {
    files: ['activities/support/**/*.ts'],
    rules: restrict([
      {
        regex: '^\\.\\./(?!\\.\\./)[^/]+(/|$)',
        message: 'activities/support is shared by the activities: it never imports one of them.',
      },
    ]),
  },
];

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'data/**',
      'node_modules/**',
      '.tools/**',
      '.test-venv/**',
      'bench/results/**',
      'test/fixtures/**',
      '*.js',
      '*.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // The bin shims are plain CommonJS run by node before anything is compiled.
    files: ['bin/**/*.js', 'test/reliability/jest.config.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  ...boundaries,
);
