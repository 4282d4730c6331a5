import * as fs from 'node:fs';

/**
 * How a worker authenticates to a remote Temporal server, from the environment (documented in .env.example):
 * mTLS with TEMPORAL_TLS_CERT + TEMPORAL_TLS_KEY (PEM files; TEMPORAL_TLS_CA for a private CA,
 * TEMPORAL_TLS_SERVER_NAME to override the name checked), and/or an API key (TEMPORAL_API_KEY, e.g. Temporal
 * Cloud), which is only ever sent over TLS. None set: plain connection (the embedded dev server on localhost).
 * The same options fit NativeConnection (worker) and Connection (client).
 */
export interface TemporalSecurity {
  tls?:
    | true
    | {
        clientCertPair?: { crt: Buffer; key: Buffer };
        serverRootCACertificate?: Buffer;
        serverNameOverride?: string;
      };
  apiKey?: string;
}

export class TemporalSecurityError extends Error {
  override name = 'TemporalSecurityError';
}

function readPem(name: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new TemporalSecurityError(
      `${name}=${file}: cannot read the file (${(err as NodeJS.ErrnoException).code})`,
    );
  }
}

export function temporalSecurity(env: NodeJS.ProcessEnv = process.env): TemporalSecurity {
  const cert = env.TEMPORAL_TLS_CERT?.trim();
  const key = env.TEMPORAL_TLS_KEY?.trim();
  const ca = env.TEMPORAL_TLS_CA?.trim();
  const serverName = env.TEMPORAL_TLS_SERVER_NAME?.trim();
  const apiKey = env.TEMPORAL_API_KEY?.trim();
  if (Boolean(cert) !== Boolean(key)) {
    throw new TemporalSecurityError(
      'TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together: set both or neither',
    );
  }
  const out: TemporalSecurity = {};
  if (cert && key) {
    out.tls = {
      clientCertPair: { crt: readPem('TEMPORAL_TLS_CERT', cert), key: readPem('TEMPORAL_TLS_KEY', key) },
      ...(ca ? { serverRootCACertificate: readPem('TEMPORAL_TLS_CA', ca) } : {}),
      ...(serverName ? { serverNameOverride: serverName } : {}),
    };
  } else if (ca || serverName) {
    out.tls = {
      ...(ca ? { serverRootCACertificate: readPem('TEMPORAL_TLS_CA', ca) } : {}),
      ...(serverName ? { serverNameOverride: serverName } : {}),
    };
  }
  if (apiKey) {
    out.apiKey = apiKey;
    out.tls ??= true; // an API key in clear text would be readable by anyone on the path
  }
  return out;
}
