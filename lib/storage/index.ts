export { checkKey, joinKey, StorageKeyError, type Storage, type StoredObject } from './types';
export { LocalStorage } from './local';
export { S3Storage, parseS3Uri, s3EndpointFromEnv } from './s3';
export { openStorage } from './open';
export {
  readDocument,
  updateDocument,
  DocumentConflictError,
  type Change,
  type VersionedDocument,
} from './documents';
