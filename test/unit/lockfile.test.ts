import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * package-lock.json's root entry must be exactly what `npm install` writes for package.json, or a fresh clone's
 * install rewrites it (and the clone is dirty at once). The case that broke it: `npm install -O <pkg>` records an
 * optional dependency under both `dependencies` and `optionalDependencies` of the root entry, while a plain
 * install writes it under `optionalDependencies` only. Add dependencies by editing package.json and running
 * `npm install`; .ci/run also fails when an install changes the lockfile.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
const root = lock.packages[''];

test.each(['dependencies', 'devDependencies', 'optionalDependencies', 'bin'])(
  'the lockfile root lists the same %s',
  (k) => {
    expect(root[k] ?? {}).toEqual(pkg[k] ?? {});
  },
);

test('an optional dependency is not also listed as a regular one in the lockfile root', () => {
  for (const name of Object.keys(root.optionalDependencies ?? {}))
    expect(root.dependencies ?? {}).not.toHaveProperty(name);
});

test('every direct dependency is locked', () => {
  for (const k of ['dependencies', 'devDependencies', 'optionalDependencies'])
    for (const name of Object.keys(pkg[k] ?? {}))
      expect(lock.packages).toHaveProperty([`node_modules/${name}`]);
});
