import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { S3Storage, parseS3Uri } from '../../lib/storage';
import { requireHttpfs } from '../../lib/storage/httpfs';
import { storageContract } from '../helpers/storage-contract';
import { createBucket, startS3Server, type S3TestServer } from '../helpers/s3-server';

const root = path.join(__dirname, '..', '..');
let server: S3TestServer;
let n = 0;

beforeAll(async () => {
  server = await startS3Server();
  await createBucket(server, 'recforge-test');
}, 60_000);
afterAll(async () => server?.stop());

const fresh = async () => new S3Storage(`s3://recforge-test/t${++n}-${Date.now()}`, server.env);

describe('S3Storage against a local S3 API server: the storage contract', () => {
  storageContract(fresh, () => server.env);
});

describe('S3 URIs', () => {
  test('parse bucket and prefix, refuse what is not an S3 URI', () => {
    expect(parseS3Uri('s3://my-bucket/a/b/')).toEqual({ bucket: 'my-bucket', prefix: 'a/b' });
    expect(parseS3Uri('s3://my-bucket')).toEqual({ bucket: 'my-bucket', prefix: '' });
    for (const bad of ['s3://', 's3://B/x', 'http://x/y', '/tmp/x', 's3://ab'])
      expect(() => parseS3Uri(bad)).toThrow(/expected s3:\/\/bucket/);
  });
});

describe('DuckDB reads and writes Parquet in the bucket through the httpfs extension installed by setup', () => {
  test('COPY to s3://, read back by DuckDB and listed by the storage layer', async () => {
    const s = await fresh();
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    await c.run(`LOAD '${requireHttpfs(root)}'`);
    await c.run(s.duckdbSecretSql(server.env));
    await c.run(
      `COPY (SELECT range AS x, 'u' || range AS u FROM range(50000)) TO '${s.uri('out/part-0.parquet')}' (FORMAT parquet)`,
    );
    const rows = (
      await c.runAndReadAll(`SELECT count(*), sum(x) FROM read_parquet('${s.uri('out')}/*.parquet')`)
    ).getRows();
    expect(rows).toEqual([[50000n, 1249975000n]]);
    expect(await s.list('out')).toEqual(['out/part-0.parquet']);
    // The object is a real Parquet file: its magic bytes at both ends.
    const body = (await s.get('out/part-0.parquet'))!.body;
    expect(body.subarray(0, 4).toString()).toBe('PAR1');
    expect(body.subarray(body.length - 4).toString()).toBe('PAR1');
    c.closeSync();
    fs.rmSync(path.join(os.tmpdir(), 'none'), { force: true });
  });
});
