export { checkKey, joinKey, StorageKeyError, type Storage, type StoredObject } from './types';
export { LocalStorage } from './local';
export {
  readDocument,
  updateDocument,
  DocumentConflictError,
  type Change,
  type VersionedDocument,
} from './documents';
