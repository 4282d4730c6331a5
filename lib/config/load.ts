import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { validatedConfigSchema, type RecforgeConfig } from './schema';

/** Raised for any configuration problem; the message names the file and the key. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
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

/**
 * The overlay files named by RECFORGE_CONFIG: a list separated like PATH (`a.yaml:b.yaml` on POSIX), so one
 * variable can stack a site overlay and a dataset overlay. Empty entries are ignored.
 */
export function configListFromEnv(value: string | undefined): string[] {
  return (value ?? '')
    .split(path.delimiter)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The overlay files of a load, in merge order: RECFORGE_CONFIG's list first, then the option's. */
export function overlayFiles(options: Pick<LoadOptions, 'overlay' | 'env'>): string[] {
  const fromOption = options.overlay === undefined ? [] : [options.overlay].flat();
  return [...configListFromEnv((options.env ?? process.env).RECFORGE_CONFIG), ...fromOption];
}

/**
 * Loads configs/default.yaml, the overlay files (RECFORGE_CONFIG's list, then the option's), environment
 * overrides and programmatic overrides, validates the result and makes `dataDir` absolute.
 */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const root = options.root ?? findProjectRoot();
  const defaultFile = path.join(root, 'configs', 'default.yaml');
  const layers: { name: string; data: Plain }[] = [{ name: defaultFile, data: readConfigFile(defaultFile) }];
  for (const overlay of overlayFiles({ overlay: options.overlay, env })) {
    const file = path.resolve(root, overlay);
    layers.push({ name: file, data: readConfigFile(file) });
  }
  const fromEnv = envOverrides(env);
  if (Object.keys(fromEnv).length) layers.push({ name: 'environment', data: fromEnv });
  if (options.overrides && Object.keys(options.overrides).length) {
    layers.push({ name: 'overrides', data: options.overrides });
  }

  const merged = layers.reduce<Plain>((acc, l) => deepMerge(acc, l.data), {});
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
  return { config, sources: layers.map((l) => l.name), root };
}

/** Resolves a path from config relative to the data dir (absolute paths stay as they are). */
export function dataPath(config: RecforgeConfig, p: string): string {
  return path.isAbsolute(p) ? p : path.join(config.dataDir, p);
}
