/** Compiles models/ modules for a worker thread (jest runs TypeScript; a worker thread needs JavaScript). */
import { transformFileSync } from '@swc/core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Writes <name>.js for each models/<name>.ts into one temp folder; returns the path of the first. */
export function compileModels(names: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recforge-worker-'));
  for (const name of names) {
    const src = path.join(__dirname, '..', '..', 'models', `${name}.ts`);
    const { code } = transformFileSync(src, {
      jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
      module: { type: 'commonjs' },
    });
    fs.writeFileSync(path.join(dir, `${name}.js`), code);
  }
  return path.join(dir, `${names[0]}.js`);
}

/** The kernel worker (kernel-pool.ts) and the kernels it loads. */
export function compileKernelWorker(): string {
  return compileModels([
    'kernel-worker',
    'kernels',
    'ials-kernels',
    'bpr-kernel',
    'simd-kernels',
    'simd-cg',
    'simd-bpr',
    'simd-codegen',
    'wasm-asm',
  ]);
}
