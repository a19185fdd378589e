import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import S3rver from 's3rver';
import { freePort } from './free-port.js';
import { conditionalWrites } from './s3-conditional-writes.js';

export interface SandboxS3ServerOptions {
  /** Serve HTTPS with a freshly generated self-signed certificate (its CA file is `caFile`). */
  tls?: boolean;
  /**
   * Honour `If-None-Match: *` on PutObject and CompleteMultipartUpload like
   * AWS S3, MinIO and Ceph do (s3rver itself ignores it); default false.
   */
  conditionalWrites?: boolean;
  /** Buckets to create before the server answers. */
  buckets?: string[];
  /** Parent directory for the server's data (default env PGHARBOR_SANDBOX_DIR, else os.tmpdir()). */
  rootDir?: string;
}

export interface SandboxS3Server {
  /** e.g. http://127.0.0.1:40123 — use path-style addressing (`force_path_style: true`). */
  readonly endpoint: string;
  readonly region: string;
  /** Fresh random credentials for this server, so tests can prove they never leak. */
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** With `tls`: the certificate to trust (PEM). */
  readonly caFile?: string;
  /** Where s3rver keeps buckets and objects. */
  readonly directory: string;
  createBucket(name: string): Promise<void>;
  /**
   * The requests served since start (or the last clear), oldest first: lets
   * tests prove what went over the wire (a multipart upload, a conditional PUT).
   */
  requests(): S3Request[];
  clearRequests(): void;
  /**
   * Answer the next `count` requests with an error instead of serving them
   * (default 503 SlowDown, S3's throttling answer), to test retries.
   */
  failNext(count: number, error?: { status: number; code: string }): void;
  /** Stop answering (to test a store that went away); `start` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  isRunning(): boolean;
  /** Stop and remove every file. */
  destroy(): Promise<void>;
}

export interface S3Request {
  method: string;
  /** Path and query, e.g. "/bucket/key?partNumber=2&uploadId=…". */
  url: string;
  /** Request headers a test may want to check (lower-case names). */
  headers: Record<string, string | undefined>;
  status: number;
}

/** Bounded, so that a long test cannot grow it without limit. */
const MAX_LOGGED_REQUESTS = 20_000;

/** s3rver's internal account registry: it only knows its hard-coded key pair unless told more. */
interface S3rverAccounts {
  DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void; revokeAccessKey(id: string): void };
}
const accounts = createRequire(import.meta.url)('s3rver/lib/models/account.js') as S3rverAccounts;

/** The parts of s3rver's filesystem store used here. */
interface FilesystemStore {
  putBucket(name: string): Promise<unknown>;
  existsObject(bucket: string, key: string): Promise<boolean>;
  deleteObject(bucket: string, key: string): Promise<void>;
  getResourcePath(bucket: string, key: string, resource: string): string;
}

/** s3rver is a Koa app: its store (buckets, objects), its middleware list and its HTTP server. */
interface S3rverInternals {
  store: FilesystemStore;
  middleware: unknown[];
  httpServer?: Server;
}

/**
 * A real S3-protocol HTTP server (s3rver), in-process on a free loopback
 * port, with its data in a temp directory. The AWS SDK talks real HTTP to
 * it. Notes (see ENVIRONMENT.md): paginated listings need the process to run
 * with --openssl-legacy-provider (s3rver's continuation tokens use DES), and
 * s3rver ignores `If-None-Match` on PUT unless `conditionalWrites` is set.
 */
export async function startS3Server(options: SandboxS3ServerOptions = {}): Promise<SandboxS3Server> {
  const root = options.rootDir ?? process.env.PGHARBOR_SANDBOX_DIR ?? os.tmpdir();
  const dir = await mkdtemp(path.join(root, 'pgharbor-s3-'));
  const directory = path.join(dir, 'data');
  await mkdir(directory);
  let tls: { key: Buffer; cert: Buffer; caFile: string } | undefined;
  try {
    if (options.tls) tls = await selfSignedCertificate(dir);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  const accessKeyId = `PGH${randomBytes(8).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(24).toString('base64url');
  accounts.DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);

  const log: S3Request[] = [];
  const faults = { left: 0, status: 503, code: 'SlowDown' };
  let server: (S3rver & S3rverInternals) | undefined;
  let port = 0;
  const listen = async (): Promise<void> => {
    // A fixed port after the first start, so that clients can reconnect after stop()/start().
    for (let attempt = 1; ; attempt++) {
      const candidate = port || (await freePort());
      const next = new S3rver({
        address: '127.0.0.1',
        port: candidate,
        directory,
        silent: true,
        vhostBuckets: false,
        ...(tls ? { key: tls.key, cert: tls.cert } : {}),
      }) as S3rver & S3rverInternals;
      keepDirectories(next.store);
      // Koa composes its middleware list when the server starts: ours go first.
      if (options.conditionalWrites) next.middleware.unshift(conditionalWrites(next.store));
      next.middleware.unshift(injectFaults(faults));
      next.middleware.unshift(recordRequests(log));
      try {
        await next.run();
        server = next;
        port = candidate;
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) throw error;
      }
    }
  };
  await listen();
  for (const bucket of options.buckets ?? []) await server!.store.putBucket(bucket);

  const stop = async (): Promise<void> => {
    const running = server;
    server = undefined;
    if (!running) return;
    // Cut open keep-alive connections too: a stopped store must look stopped to clients.
    running.httpServer?.closeAllConnections?.();
    await running.close();
  };

  return {
    endpoint: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    region: 'us-east-1',
    accessKeyId,
    secretAccessKey,
    caFile: tls?.caFile,
    directory,
    async createBucket(name) {
      if (!server) throw new Error('the sandbox S3 server is stopped');
      await server.store.putBucket(name);
    },
    requests: () => [...log],
    clearRequests: () => void log.splice(0),
    failNext(count, error = { status: 503, code: 'SlowDown' }) {
      Object.assign(faults, { left: count, ...error });
    },
    stop,
    start: async () => {
      if (!server) await listen();
    },
    isRunning: () => server !== undefined,
    async destroy() {
      await stop();
      accounts.DUMMY_ACCOUNT.revokeAccessKey(accessKeyId);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * s3rver removes directories left empty by a delete, racing with a put
 * creating its file in that same directory (an unhandled ENOENT that kills
 * the process), and with the other deletes of one DeleteObjects request. A
 * real store has no directories: keep them.
 */
function keepDirectories(store: FilesystemStore): void {
  store.deleteObject = async (bucket, key) => {
    const files = ['object', 'object.md5', 'metadata.json'].map((resource) => store.getResourcePath(bucket, key, resource));
    await Promise.all(files.map((file) => unlink(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    })));
  };
}

interface FaultContext {
  req: AsyncIterable<unknown>;
  status: number;
  type: string;
  body: unknown;
}

function injectFaults(faults: { left: number; status: number; code: string }): (ctx: FaultContext, next: () => Promise<void>) => Promise<void> {
  return async (ctx, next) => {
    if (faults.left <= 0) return next();
    faults.left--;
    for await (const _ of ctx.req) {
      // Read the request body first, as S3 does.
    }
    ctx.status = faults.status;
    ctx.type = 'application/xml';
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${faults.code}</Code><Message>injected by the test</Message></Error>`;
  };
}

interface RecordedContext {
  method: string;
  url: string;
  status: number;
  get(header: string): string;
}

function recordRequests(log: S3Request[]): (ctx: RecordedContext, next: () => Promise<void>) => Promise<void> {
  return async (ctx, next) => {
    try {
      await next();
    } finally {
      if (log.length >= MAX_LOGGED_REQUESTS) log.shift();
      const header = (name: string) => ctx.get(name) || undefined;
      log.push({
        method: ctx.method,
        url: ctx.url,
        headers: { 'if-none-match': header('if-none-match'), 'x-amz-storage-class': header('x-amz-storage-class'), 'x-amz-server-side-encryption': header('x-amz-server-side-encryption'), range: header('range') },
        status: ctx.status,
      });
    }
  };
}

/** A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI. */
async function selfSignedCertificate(dir: string): Promise<{ key: Buffer; cert: Buffer; caFile: string }> {
  const keyFile = path.join(dir, 'tls.key');
  const certFile = path.join(dir, 'tls.crt');
  await writeFile(keyFile, '', { mode: 0o600 });
  await execa('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=pgharbor sandbox S3',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  return { key: await readFile(keyFile), cert: await readFile(certFile), caFile: certFile };
}
