import * as fs from 'node:fs';
import * as path from 'node:path';
import type { S3Client as S3ClientType } from '@aws-sdk/client-s3';
import { checkKey, type Storage, type StoredObject } from './types';

/**
 * Storage in an S3-compatible bucket (`s3://bucket/prefix`), for deployments whose workers share no disk.
 *
 * Credentials and endpoint come only from the environment (the standard AWS variables: AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL for a
 * non-AWS server), never from config files or workflow inputs.
 *
 * Immutable objects are single PUTs (S3 makes an object visible whole or not at all). State documents use
 * S3's conditional writes: `If-None-Match: *` to create, `If-Match: <ETag>` to replace; a 412 (or the 409 S3
 * returns while a conflicting write is in flight) means another writer won.
 */

export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing '/' ('' for the bucket root). */
  prefix: string;
}

export function parseS3Uri(uri: string): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(uri);
  if (!m)
    throw new Error(
      `'${uri}': expected s3://bucket[/prefix] (bucket names: 3-63 lowercase letters, digits, dots, dashes)`,
    );
  return { bucket: m[1], prefix: (m[2] ?? '').replace(/^\/+|\/+$/g, '') };
}

/** The endpoint S3 clients and DuckDB use: AWS's unless the environment names another server. */
export function s3EndpointFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
}

type Sdk = typeof import('@aws-sdk/client-s3');
let sdk: Sdk | undefined;
function loadSdk(): Sdk {
  // The SDK announces on every Node 20 process that versions from 2027 on need Node 22; this one is pinned.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // Loaded on first use: local-storage processes never pay for the SDK.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  sdk ??= require('@aws-sdk/client-s3') as Sdk;
  return sdk;
}

const statusOf = (err: unknown) =>
  (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

export class S3Storage implements Storage {
  readonly kind = 's3' as const;
  readonly root: string;
  readonly location: S3Location;
  private readonly client: S3ClientType;

  constructor(root: string, env: NodeJS.ProcessEnv = process.env) {
    this.location = parseS3Uri(root);
    this.root = `s3://${this.location.bucket}${this.location.prefix ? `/${this.location.prefix}` : ''}`;
    const { S3Client } = loadSdk();
    const endpoint = s3EndpointFromEnv(env);
    this.client = new S3Client({
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
      ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
      // Keys from the given environment when it has them; otherwise the SDK's default chain (instance roles…).
      ...(env.AWS_ACCESS_KEY_ID
        ? {
            credentials: {
              accessKeyId: env.AWS_ACCESS_KEY_ID,
              secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? '',
              ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
            },
          }
        : {}),
    });
  }

  private objectKey(key: string): string {
    checkKey(key);
    return this.location.prefix ? `${this.location.prefix}/${key}` : key;
  }

  uri(key: string): string {
    return `s3://${this.location.bucket}/${this.objectKey(key)}`;
  }

  async get(key: string): Promise<StoredObject | null> {
    const { GetObjectCommand } = loadSdk();
    try {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: this.location.bucket, Key: this.objectKey(key) }),
      );
      const body = Buffer.from(await r.Body!.transformToByteArray());
      return { body, token: r.ETag ?? '' };
    } catch (err) {
      if ((err as Error).name === 'NoSuchKey' || statusOf(err) === 404) return null;
      throw err;
    }
  }

  async put(key: string, body: Buffer | string): Promise<void> {
    const { PutObjectCommand } = loadSdk();
    await this.client.send(
      new PutObjectCommand({ Bucket: this.location.bucket, Key: this.objectKey(key), Body: body }),
    );
  }

  async putIfMatch(key: string, body: Buffer | string, token: string | null): Promise<string | null> {
    const { PutObjectCommand } = loadSdk();
    try {
      const r = await this.client.send(
        new PutObjectCommand({
          Bucket: this.location.bucket,
          Key: this.objectKey(key),
          Body: body,
          ...(token === null ? { IfNoneMatch: '*' } : { IfMatch: token }),
        }),
      );
      return r.ETag ?? null;
    } catch (err) {
      const status = statusOf(err);
      // 412: the condition failed; 409: a conflicting conditional write is in flight; 404: If-Match on a
      // deleted object. In every case someone else changed the document: the caller reads again.
      if (status === 412 || status === 409 || (token !== null && status === 404)) return null;
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    const { HeadObjectCommand } = loadSdk();
    try {
      await this.client.send(
        new HeadObjectCommand({ Bucket: this.location.bucket, Key: this.objectKey(key) }),
      );
      return true;
    } catch (err) {
      if (statusOf(err) === 404 || (err as Error).name === 'NotFound') return false;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const { ListObjectsV2Command } = loadSdk();
    const base = `${this.objectKey(prefix)}/`;
    const strip = this.location.prefix ? this.location.prefix.length + 1 : 0;
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: base, ContinuationToken: token }),
      );
      for (const o of r.Contents ?? []) if (o.Key) out.push(o.Key.slice(strip));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out.sort();
  }

  async delete(key: string): Promise<void> {
    const { DeleteObjectCommand } = loadSdk();
    await this.client.send(
      new DeleteObjectCommand({ Bucket: this.location.bucket, Key: this.objectKey(key) }),
    );
  }

  async deletePrefix(prefix: string): Promise<void> {
    const { DeleteObjectsCommand } = loadSdk();
    const keys = await this.list(prefix);
    for (let i = 0; i < keys.length; i += 1000) {
      await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.location.bucket,
          Delete: { Objects: keys.slice(i, i + 1000).map((k) => ({ Key: this.objectKey(k) })), Quiet: true },
        }),
      );
    }
  }

  async localDir(prefix: string, cacheDir: string): Promise<string> {
    const target = path.join(cacheDir, ...checkKey(prefix).split('/'));
    for (const key of await this.list(prefix)) {
      const file = path.join(target, ...key.slice(prefix.length + 1).split('/'));
      const obj = await this.get(key);
      if (!obj) continue; // deleted meanwhile
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, obj.body);
    }
    return target;
  }

  async putDir(localDir: string, prefix: string): Promise<void> {
    const walk = (dir: string, rel: string): string[] =>
      fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
        const r = rel ? `${rel}/${e.name}` : e.name;
        return e.isDirectory() ? walk(path.join(dir, e.name), r) : e.isFile() ? [r] : [];
      });
    for (const rel of walk(localDir, ''))
      await this.put(`${prefix}/${rel}`, fs.readFileSync(path.join(localDir, ...rel.split('/'))));
  }

  async syncCopy(): Promise<void> {
    // The object is the document: nothing derived to refresh.
  }

  /** DuckDB statements that let a connection read and write this bucket (httpfs must be loaded first). */
  duckdbSecretSql(env: NodeJS.ProcessEnv = process.env): string {
    const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
    const endpoint = s3EndpointFromEnv(env);
    const parts = [`TYPE s3`, `REGION ${q(env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1')}`];
    if (env.AWS_ACCESS_KEY_ID)
      parts.push(`KEY_ID ${q(env.AWS_ACCESS_KEY_ID)}`, `SECRET ${q(env.AWS_SECRET_ACCESS_KEY ?? '')}`);
    else parts.push(`PROVIDER credential_chain`);
    if (env.AWS_SESSION_TOKEN) parts.push(`SESSION_TOKEN ${q(env.AWS_SESSION_TOKEN)}`);
    if (endpoint) {
      const u = new URL(endpoint);
      parts.push(`ENDPOINT ${q(u.host)}`, `URL_STYLE 'path'`, `USE_SSL ${u.protocol === 'https:'}`);
    }
    parts.push(`SCOPE ${q(`s3://${this.location.bucket}`)}`);
    return `CREATE OR REPLACE TEMPORARY SECRET recforge_s3 (${parts.join(', ')})`;
  }
}
