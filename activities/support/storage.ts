import * as path from 'node:path';
import type { RecforgeConfig } from '../../lib/config';
import { ConfigError } from '../../lib/config';
import { openStorage, type Storage } from '../../lib/storage';
import { ModelRegistry } from '../../registry/registry';

/** The root runs are planned on: `storage.root` when it names a bucket, else the data folder. */
export function storageRootOf(config: RecforgeConfig): string {
  return config.storage.root || config.dataDir;
}

/** The config's storage (registry, output, state): the same root every run of this config is planned on. */
export function storageOf(config: RecforgeConfig): Storage {
  return openStorage(storageRootOf(config));
}

/**
 * A configured location as a storage key. Locations are relative to the storage root; an absolute path is
 * accepted only inside the data folder on local storage (older configs), never outside — a run cannot write
 * beyond its storage. On a bucket an absolute path means nothing, so it is refused.
 */
export function configKey(config: RecforgeConfig, location: string, what: string): string {
  if (config.storage.root && path.isAbsolute(location))
    throw new ConfigError(`${what} '${location}' must be relative to storage.root ${config.storage.root}`);
  const rel = path.isAbsolute(location) ? path.relative(config.dataDir, location) : path.normalize(location);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new ConfigError(`${what} '${location}' must be inside the data folder ${config.dataDir}`);
  }
  return rel.split(path.sep).join('/');
}

/** A file the run wrote under the data folder, as a storage key (local storage). */
export function keyOfPath(store: Storage, file: string): string {
  const rel = path.relative(store.root, file);
  if (rel.startsWith('..') || path.isAbsolute(rel))
    throw new Error(`${file} is outside the storage root ${store.root}`);
  return rel.split(path.sep).join('/');
}

export function registryOf(config: RecforgeConfig, datasetId: string): ModelRegistry {
  return new ModelRegistry(storageOf(config), {
    datasetId,
    registryPrefix: `${configKey(config, config.registry.dir, 'registry.dir')}/${datasetId}`,
    outputPrefix: `${configKey(config, config.publish.outputDir, 'publish.outputDir')}/${datasetId}`,
  });
}
