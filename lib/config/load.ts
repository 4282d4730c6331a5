import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { RecforgeError } from '../../contracts/errors';
import {
  isAutoSize,
  resolveChallenger,
  validatedConfigSchema,
  type RecforgeConfig,
} from '../../contracts/config';
import { autoMemoryLimit } from './memory';

/** Raised for any configuration problem; the message names the file and the key. Non-retryable. */
export class ConfigError extends RecforgeError {
  constructor(message: string) {
    super('ConfigError', message);
  }
}

export interface LoadedConfig {
  config: RecforgeConfig;
  /** Files merged, in order (later wins). */
  sources: string[];
  /** Absolute project root the relative paths were resolved against. */
  root: string;
}

export interface LoadOptions {
  /** Project root; defaults to the folder holding configs/default.yaml above this module. */
  root?: string;
  /**
   * Overlay config file(s) merged over configs/default.yaml in order (later wins), after the files listed in
   * RECFORGE_CONFIG: the environment sets a site's standing overlays, the command line adds to them.
   */
  overlay?: string | readonly string[];
  /** Environment to read overrides from (defaults to process.env). */
  env?: NodeJS.ProcessEnv;
  /** Plain-object overrides applied last (e.g. from a workflow input). Validated like files. */
  overrides?: Record<string, unknown>;
}

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep merge where objects merge and everything else replaces. */
export function deepMerge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isPlain(v) && isPlain(out[k]) ? deepMerge(out[k] as Plain, v) : v;
  }
  return out;
}

function readConfigFile(file: string): Plain {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${file}: cannot read config file (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(
      `${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`,
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isPlain(parsed)) throw new ConfigError(`${file}: the top level must be a mapping of keys`);
  return parsed;
}

function hasPath(obj: Plain, keyPath: PropertyKey[]): boolean {
  let cur: unknown = obj;
  for (const k of keyPath) {
    if (!isPlain(cur) || !(String(k) in cur)) return false;
    cur = cur[String(k)];
  }
  return true;
}

/** Finds the project root: the nearest ancestor holding configs/default.yaml. */
export function findProjectRoot(start = __dirname): string {
  let dir = path.resolve(start);
  for (;;) {
    if (fs.existsSync(path.join(dir, 'configs', 'default.yaml'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new ConfigError(`cannot find configs/default.yaml above ${start}`);
    dir = parent;
  }
}

function envOverrides(env: NodeJS.ProcessEnv): Plain {
  const out: Plain = {};
  if (env.TEMPORAL_ADDRESS !== undefined) out.temporal = { address: env.TEMPORAL_ADDRESS };
  if (env.TEMPORAL_NAMESPACE)
    out.temporal = { ...(out.temporal as Plain), namespace: env.TEMPORAL_NAMESPACE };
  if (env.RECFORGE_DATA_DIR) out.dataDir = env.RECFORGE_DATA_DIR;
  if (env.RECFORGE_STORAGE_ROOT !== undefined) out.storage = { root: env.RECFORGE_STORAGE_ROOT };
  return out;
}

function formatIssue(issue: z.core.$ZodIssue, where: string): string {
  const key = issue.path.map(String).join('.') || '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (issue.path.length ? `${key}.${k}` : k)).join(', ');
    return `${where}: unknown key ${keys}`;
  }
  return `${where}: ${key}: ${issue.message}`;
}

interface Layer {
  name: string;
  data: Plain;
}

/**
 * The overlay files named by RECFORGE_CONFIG, in order: a list separated by commas or like PATH
 * (`a.yaml,b.yaml` or `a.yaml:b.yaml`), so one variable can stack a site overlay and a dataset overlay.
 */
export function configListFromEnv(value: string | undefined): string[] {
  return (value ?? '')
    .split(/[,:]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** RECFORGE_CONFIG's overlays (see configListFromEnv). */
export function workerOverlays(env: NodeJS.ProcessEnv): string[] {
  return configListFromEnv(env.RECFORGE_CONFIG);
}

/** The overlay files of a plain load, in merge order: RECFORGE_CONFIG's list first, then the option's. */
export function overlayFiles(options: Pick<LoadOptions, 'overlay' | 'env'>): string[] {
  const fromOption = options.overlay === undefined ? [] : [options.overlay].flat();
  return [...workerOverlays(options.env ?? process.env), ...fromOption];
}

function fileLayer(root: string, file: string): Layer {
  const abs = path.resolve(root, file);
  return { name: abs, data: readConfigFile(abs) };
}

/** The worker's layers: configs/default.yaml, RECFORGE_CONFIG's overlays then `extra`, the environment. */
function workerLayers(root: string, env: NodeJS.ProcessEnv, extra?: string | readonly string[]): Layer[] {
  const defaultFile = path.join(root, 'configs', 'default.yaml');
  const layers: Layer[] = [{ name: defaultFile, data: readConfigFile(defaultFile) }];
  for (const f of overlayFiles({ overlay: extra, env })) layers.push(fileLayer(root, f));
  const fromEnv = envOverrides(env);
  if (Object.keys(fromEnv).length) layers.push({ name: 'environment', data: fromEnv });
  return layers;
}

const mergeLayers = (layers: Layer[]): Plain => layers.reduce<Plain>((acc, l) => deepMerge(acc, l.data), {});

/** Validates merged layers; an error names, per problem, the last layer that set the key. */
function validate(layers: Layer[], root: string): RecforgeConfig {
  const merged = mergeLayers(layers);
  const result = validatedConfigSchema.safeParse(merged);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      // Blame the last layer that set the offending key (or its parent for unknown keys).
      const blamed =
        [...layers].reverse().find((l) => hasPath(l.data, issue.path)) ?? layers[layers.length - 1];
      if (issue.code === 'unrecognized_keys') {
        const owner = [...layers]
          .reverse()
          .find((l) => issue.keys.some((k) => hasPath(l.data, [...issue.path, k])));
        return formatIssue(issue, (owner ?? blamed).name);
      }
      return formatIssue(issue, blamed.name);
    });
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const config = result.data;
  config.dataDir = path.resolve(root, config.dataDir);
  // Every consumer (workflow, activities, registry, reports) sees the concrete challenger.
  config.training.challenger = resolveChallenger(config);
  // … and a byte size for DuckDB's memory, sized from this machine (lib/config/memory.ts).
  if (isAutoSize(config.duckdb.memoryLimit)) config.duckdb.memoryLimit = autoMemoryLimit();
  return config;
}

/**
 * Loads configs/default.yaml, the overlay files (RECFORGE_CONFIG's list, then the option's), environment overrides and
 * programmatic overrides, validates the result and makes `dataDir` absolute. A plain loader with no protected
 * keys: tools and tests use it; workers use loadWorkerConfig, and a run's config comes from loadRunConfig.
 */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const root = options.root ?? findProjectRoot();
  const layers = workerLayers(root, env, options.overlay);
  if (options.overrides && Object.keys(options.overrides).length) {
    layers.push({ name: 'overrides', data: options.overrides });
  }
  return { config: validate(layers, root), sources: layers.map((l) => l.name), root };
}

/**
 * Config keys only the workers' own config may set (configs/default.yaml, RECFORGE_CONFIG overlays, the
 * environment): they decide the privacy ledger and budget, where state and outputs live, and routing. A run's
 * layers (the workflow input's `config` file and `overrides`, or the CLI's `--config`) may not change them.
 */
export const PROTECTED_KEYS = [
  'dataDir',
  'storage',
  'privacy',
  'temporal',
  'registry',
  'publish.outputDir',
  'dataset.inputRoots',
] as const;

/** The worker's config: configs/default.yaml + RECFORGE_CONFIG overlays (a comma-separated list) + environment. */
export function loadWorkerConfig(options: { root?: string; env?: NodeJS.ProcessEnv } = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const root = options.root ?? findProjectRoot();
  const layers = workerLayers(root, env);
  return { config: validate(layers, root), sources: layers.map((l) => l.name), root };
}

/**
 * The workflow input's (or the CLI's) config file: a YAML/JSON file under the project's configs/ folder, named
 * relative to the project root (`configs/movielens.yaml`) or absolutely. Anything else is refused: a run must
 * not read arbitrary files on the worker, and the folder is what operators review.
 */
export function resolveRunConfigFile(root: string, spec: string): string {
  const configsDir = path.join(root, 'configs');
  const refuse = (why: string): never => {
    throw new ConfigError(
      `run config '${String(spec).slice(0, 200)}': ${why}; a run's config must be a .yaml, .yml or .json file under ${configsDir}`,
    );
  };
  if (typeof spec !== 'string' || spec.length === 0 || spec.includes('\0')) refuse('not a file name');
  if (!/\.(ya?ml|json)$/i.test(spec)) refuse('not a YAML or JSON file');
  let real: string;
  let realDir: string;
  try {
    real = fs.realpathSync(path.resolve(root, spec));
    realDir = fs.realpathSync(configsDir);
  } catch {
    return refuse('no such file');
  }
  // Symlinks resolved first, so a link inside configs/ cannot point elsewhere.
  if (!real.startsWith(realDir + path.sep)) refuse('outside the configs folder');
  if (!fs.statSync(real).isFile()) refuse('not a file');
  return real;
}

export interface RunConfigOptions {
  root?: string;
  /** The worker's environment (RECFORGE_CONFIG, TEMPORAL_*, RECFORGE_DATA_DIR); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** The run's config file(s) (workflow input `config`, CLI `--config`), merged in order: under configs/ only. */
  config?: string | readonly string[];
  /** The run's overrides (workflow input `overrides`). */
  overrides?: Record<string, unknown>;
  /** Tests only: let the run's layers change protected keys (each test keeps its state in its own folder). */
  allowProtected?: boolean;
}

export interface LoadedRunConfig extends LoadedConfig {
  /** The worker's own config the run was checked against. */
  worker: RecforgeConfig;
}

function getPath(obj: unknown, keys: string[]): unknown {
  let cur = obj;
  for (const k of keys) {
    if (!isPlain(cur) || !(k in cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

/** The first leaf (dotted path) where a and b differ, depth first; null when they are equal. */
function firstDifference(a: unknown, b: unknown, at: string[]): string[] | null {
  if (isPlain(a) && isPlain(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const d = firstDifference(a[k], b[k], [...at, k]);
      if (d) return d;
    }
    return null;
  }
  return JSON.stringify(a) === JSON.stringify(b) ? null : at;
}

const show = (v: unknown): string => (v === undefined ? '(unset)' : JSON.stringify(v).slice(0, 80));

/**
 * A run's config: the worker's config with the run's layers (its config file, then its overrides) merged on top.
 * The protected keys are compared on the merged result against the worker's config — whichever layer, file or
 * override, would change one, the run is refused naming the key and the layer. Throws ConfigError.
 */
export function loadRunConfig(options: RunConfigOptions = {}): LoadedRunConfig {
  const env = options.env ?? process.env;
  const root = options.root ?? findProjectRoot();
  const base = workerLayers(root, env);
  const worker = validate(base, root);
  const runLayers: Layer[] = [];
  for (const spec of options.config === undefined ? [] : [options.config].flat()) {
    const file = resolveRunConfigFile(root, spec);
    runLayers.push({ name: file, data: readConfigFile(file) });
  }
  if (options.overrides && Object.keys(options.overrides).length) {
    if (!isPlain(options.overrides)) throw new ConfigError('overrides: expected a mapping of config keys');
    runLayers.push({ name: 'workflow input overrides', data: options.overrides });
  }
  const layers = [...base, ...runLayers];
  if (!options.allowProtected && runLayers.length > 0) {
    const before = mergeLayers(base);
    const after = mergeLayers(layers);
    for (const key of PROTECTED_KEYS) {
      const parts = key.split('.');
      const diff = firstDifference(getPath(before, parts), getPath(after, parts), parts);
      if (!diff) continue;
      const layer =
        [...runLayers].reverse().find((l) => getPath(l.data, diff) !== undefined) ??
        [...runLayers].reverse().find((l) => getPath(l.data, parts) !== undefined) ??
        runLayers[0];
      throw new ConfigError(
        `${layer.name}: may not change the protected key ${diff.join('.')} (worker: ${show(getPath(before, diff))}, ` +
          `run: ${show(getPath(after, diff))}). Protected keys (${PROTECTED_KEYS.join(', ')}) are set only in the ` +
          "workers' config (configs/default.yaml, RECFORGE_CONFIG, environment): a run cannot choose another privacy " +
          'ledger, lift the budget or move state',
      );
    }
  }
  return { config: validate(layers, root), worker, sources: layers.map((l) => l.name), root };
}

/** Resolves a path from config relative to the data dir (absolute paths stay as they are). */
export function dataPath(config: RecforgeConfig, p: string): string {
  return path.isAbsolute(p) ? p : path.join(config.dataDir, p);
}
