#!/usr/bin/env node
'use strict';
/**
 * Compiles the TypeScript sources into dist/ when they changed since the last build (or with --force), and
 * stamps the build. npm's `prepare` runs it at install; bin/recforge.js runs it before each command, where it
 * costs a walk over the sources' modification times (a few milliseconds) unless something changed — so the CLI
 * never runs stale code and never pays for tsc when nothing changed.
 */
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const STAMP = path.join(ROOT, 'dist', '.build-stamp');
// What tsconfig.build.json compiles, plus the files that change how it compiles.
const SOURCE_DIRS = [
  // contracts/, registry/ and evaluation/ are compiled as imports of the others: a change there must rebuild too.
  'contracts',
  'registry',
  'evaluation',
  'lib',
  'workflows',
  'activities',
  'worker',
  'analytics',
  'scripts',
  'cli',
  'models',
  'privacy',
  'bench',
];
const SOURCE_FILES = ['tsconfig.json', 'tsconfig.build.json', 'package.json'];

function newestSource() {
  let newest = 0;
  const visit = (dir) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'results' && e.name !== 'node_modules') visit(p);
      } else if (e.name.endsWith('.ts')) {
        newest = Math.max(newest, fs.statSync(p).mtimeMs);
      }
    }
  };
  for (const d of SOURCE_DIRS) visit(path.join(ROOT, d));
  for (const f of SOURCE_FILES) {
    try {
      newest = Math.max(newest, fs.statSync(path.join(ROOT, f)).mtimeMs);
    } catch {
      // Optional file.
    }
  }
  return newest;
}

function isStale() {
  let built;
  try {
    built = fs.statSync(STAMP).mtimeMs;
  } catch {
    return true;
  }
  return newestSource() > built;
}

/** Builds if needed; returns false when tsc failed. */
function ensureBuilt({ force = false, quiet = false } = {}) {
  if (!force && !isStale()) return true;
  const started = Date.now();
  if (!quiet) process.stderr.write('[recforge] sources changed since the last build: compiling (tsc)…\n');
  const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] });
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], {
    stdio: ['ignore', 2, 2],
  });
  if (r.status !== 0) return false;
  fs.mkdirSync(path.dirname(STAMP), { recursive: true });
  fs.writeFileSync(STAMP, `${new Date().toISOString()}\n`);
  if (!quiet) process.stderr.write(`[recforge] built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  return true;
}

module.exports = { ensureBuilt, isStale };

if (require.main === module) {
  process.exit(ensureBuilt({ force: process.argv.includes('--force') }) ? 0 : 1);
}
