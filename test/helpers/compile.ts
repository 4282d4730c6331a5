import * as fs from 'node:fs';
import * as path from 'node:path';
import { transformFileSync } from '@swc/core';

const repoRoot = path.join(__dirname, '..', '..');

/**
 * Child processes cannot load TypeScript: compiles the given source folders (relative to the repository root)
 * with swc into `outDir`, keeping the layout so their relative imports resolve. Returns outDir.
 */
export function compileForChildren(folders: string[], outDir: string): string {
  for (const folder of folders) {
    const src = path.join(repoRoot, folder);
    for (const name of fs.readdirSync(src)) {
      if (!name.endsWith('.ts')) continue;
      const { code } = transformFileSync(path.join(src, name), {
        swcrc: false,
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'commonjs' },
      });
      const target = path.join(outDir, folder, name.replace(/\.ts$/, '.js'));
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, code);
    }
  }
  return outDir;
}
