import * as path from 'node:path';
import type { RecforgeConfig } from '../../lib/config';
import { ConfigError } from '../../lib/config';
import { openStorage, type Storage } from '../../lib/storage';
import { ModelRegistry } from '../../registry/registry';

/** The run's storage: the data folder (a bucket once storage.root names one). */
export function storageOf(config: RecforgeConfig): Storage {
  return openStorage(config.dataDir);
}

/**
 * A configured location as a storage key. Locations are relative to the storage root; an absolute path is
 * accepted only inside it (older configs), never outside — a run cannot write beyond its storage.
 */
export function configKey(config: RecforgeConfig, location: string, what: string): string {
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
