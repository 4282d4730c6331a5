import { LocalStorage } from './local';
import { S3Storage } from './s3';
import type { Storage } from './types';

/** The storage at `root`: an s3://bucket/prefix URI, or a local folder. */
export function openStorage(root: string, env: NodeJS.ProcessEnv = process.env): Storage {
  return root.startsWith('s3://') ? new S3Storage(root, env) : new LocalStorage(root);
}
