import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  paginateListObjectsV2,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  ConfigError,
  StorageConflictError,
  StorageNotFoundError,
  assertValidKey,
  type ByteRange,
  type Logger,
  type PutOptions,
  type PutResult,
  type StorageDriver,
  type StorageObjectInfo,
} from '@pgharbor/core';
import { createS3Client } from './s3-client.js';
import { ConditionalPutSupport } from './conditional-put.js';
import { enforceRange } from './range-guard.js';
import { httpStatus, isConditionalConflict, isNotFound, isPreconditionFailed, s3Code, s3Error } from './s3-errors.js';
import { DEFAULT_UPLOAD_CONCURRENCY, parsePartSize, type S3StorageOptions } from './s3-options.js';

type Body = Readable | Uint8Array | string;

/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH = 1000;
/** Retries of a create-only put that overlapped another conditional write (AWS answers 409). */
const CONFLICT_RETRIES = 3;

/**
 * A repository in an S3 bucket: object "a/b/c" is the S3 key
 * "<prefix>/a/b/c". S3 makes every completed PutObject or multipart upload
 * visible whole and at once, so atomicity comes from the store; this driver
 * streams bodies in parts of `part_size` (a single PUT below that), aborts
 * the multipart upload when a body fails, and reads with explicit byte ranges.
 */
export class S3Storage implements StorageDriver {
  readonly type = 's3';
  readonly location: string;
  readonly bucket: string;
  /** Key prefix of the repository inside the bucket: "" or "some/prefix/". */
  readonly root: string;
  private readonly client: S3Client;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly conditional: ConditionalPutSupport;
  /** Set when the store refused DeleteObjects: deletePrefix then deletes key by key. */
  private batchDeleteRefused = false;
  /** Server-side encryption and storage class, applied to every object written. */
  private readonly writeParams: Partial<PutObjectCommandInput>;

  constructor(options: S3StorageOptions, context: { logger: Logger; configDir: string }) {
    this.bucket = options.bucket;
    this.root = normalizePrefix(options.prefix ?? '');
    this.location = describeLocation(options, this.root);
    this.partSize = parsePartSize(options.part_size);
    this.queueSize = options.upload_concurrency ?? DEFAULT_UPLOAD_CONCURRENCY;
    this.client = createS3Client(options, { ...context, location: this.location });
    this.writeParams = {
      ...(options.server_side_encryption ? { ServerSideEncryption: options.server_side_encryption } : {}),
      ...(options.kms_key_id ? { SSEKMSKeyId: options.kms_key_id } : {}),
      ...(options.storage_class ? { StorageClass: options.storage_class as PutObjectCommandInput['StorageClass'] } : {}),
    };
    this.conditional = new ConditionalPutSupport(
      options.conditional_put ?? 'auto',
      options.endpoint === undefined,
      () => this.probeConditionalPut(),
      context.logger,
      this.location,
    );
  }

  async put(key: string, body: Body, options: PutOptions = {}): Promise<PutResult> {
    try {
      assertValidKey(key);
      if (!options.ifNotExists) return await this.upload(key, body, {});
      // Fail before consuming a possibly large body; the conditional PUT stays the authority.
      if ((await this.stat(key)) !== undefined) throw new StorageConflictError(key, this.location);
      if (!(await this.conditional.supported())) return await this.upload(key, body, {}); // best effort, see conditional-put.ts
      return await this.putIfNoneMatch(key, body);
    } catch (error) {
      if (body instanceof Readable && !body.destroyed) body.destroy();
      throw error;
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    assertValidKey(key);
    const { offset, length } = checkRange(range);
    if (length === 0) {
      if (!(await this.stat(key))) throw new StorageNotFoundError(key, this.location);
      return Readable.from([]);
    }
    // Explicit "bytes=first-last" or "bytes=first-" ranges only: suffix ranges
    // ("bytes=-N") are answered wrongly by some S3-compatible stores.
    const Range = offset === 0 && length === undefined ? undefined : `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    try {
      const output = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.root + key, Range }));
      const body = output.Body as Readable;
      return Range ? enforceRange(body, output.ContentRange, offset, length) : body;
    } catch (error) {
      if (isNotFound(error)) throw new StorageNotFoundError(key, this.location);
      // A range starting at or past the end: like reading a file past its end, nothing.
      if (httpStatus(error) === 416 && (await this.stat(key))) return Readable.from([]);
      throw s3Error(this.location, `cannot read object "${key}"`, error);
    }
  }

  async stat(key: string): Promise<StorageObjectInfo | undefined> {
    assertValidKey(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.root + key }));
      return { key, size: head.ContentLength ?? 0, mtime: head.LastModified ?? new Date(0) };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw s3Error(this.location, `cannot stat object "${key}"`, error);
    }
  }

  /**
   * S3 prefixes are plain strings, like the contract's: no prefix can reach
   * outside the repository's own key prefix, and keys that are not valid
   * repository keys ("../x", "/abs", console folder markers) are skipped.
   */
  async *list(prefix: string): AsyncIterable<StorageObjectInfo> {
    const pages = paginateListObjectsV2({ client: this.client, pageSize: 1000 }, { Bucket: this.bucket, Prefix: this.root + prefix });
    try {
      for await (const page of pages) {
        for (const object of page.Contents ?? []) {
          const key = object.Key?.slice(this.root.length);
          // Skip what is not one of our objects: console "folder" markers ("a/b/"), probes.
          if (!key || !isValidKey(key) || key.startsWith(PROBE_PREFIX)) continue;
          yield { key, size: object.Size ?? 0, mtime: object.LastModified ?? new Date(0) };
        }
      }
    } catch (error) {
      throw s3Error(this.location, `cannot list "${prefix}"`, error);
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.root + key }));
    } catch (error) {
      if (isNotFound(error)) return;
      throw s3Error(this.location, `cannot delete object "${key}"`, error);
    }
  }

  /**
   * Everything under a "directory" prefix: its objects, one DeleteObjects
   * request per 1000 keys, and the multipart uploads a killed writer left
   * unfinished (invisible, but stored and billed).
   */
  async deletePrefix(prefix: string): Promise<void> {
    if (!prefix.endsWith('/')) throw new Error(`deletePrefix("${prefix}"): the prefix must name a directory and end with "/"`);
    assertValidKey(prefix.slice(0, -1));
    const Prefix = this.root + prefix;
    try {
      let batch: string[] = [];
      for await (const page of paginateListObjectsV2({ client: this.client, pageSize: DELETE_BATCH }, { Bucket: this.bucket, Prefix })) {
        for (const object of page.Contents ?? []) if (object.Key) batch.push(object.Key);
        if (batch.length >= DELETE_BATCH) batch = await this.deleteBatch(batch);
      }
      while (batch.length > 0) batch = await this.deleteBatch(batch);
    } catch (error) {
      throw s3Error(this.location, `cannot delete the objects under "${prefix}"`, error);
    }
    await this.abortUploads(Prefix);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /**
   * Stream a body into the object: one PutObject when it fits in a part,
   * else a multipart upload of `queueSize` parts at a time (so memory stays
   * near part_size × (queueSize + 1) whatever the object size). When the
   * body or a part fails, the multipart upload is aborted: nothing appears.
   */
  private async upload(key: string, body: Body, extra: Partial<PutObjectCommandInput>): Promise<PutResult> {
    let size = typeof body === 'string' ? Buffer.byteLength(body) : body instanceof Uint8Array ? body.byteLength : 0;
    const source = { failure: undefined as unknown };
    // Not object mode: an object-mode Readable.from would read up to 16 chunks ahead.
    const counted = body instanceof Readable ? Readable.from(countBytes(body, (n) => (size += n), source), { objectMode: false }) : body;
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.root + key, Body: counted, ...this.writeParams, ...extra },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      if (isPreconditionFailed(error) && extra.IfNoneMatch) throw new StorageConflictError(key, this.location);
      // The caller's body failed: that is the error to report, even when the store
      // then refused to abort the multipart upload (parts left behind are invisible;
      // a lifecycle rule removes them, see the README).
      if (source.failure !== undefined) throw source.failure;
      throw s3Error(this.location, `cannot write object "${key}"`, error);
    }
    return { size };
  }

  /** Create-only with If-None-Match: the store refuses (412) when the key exists. */
  private async putIfNoneMatch(key: string, body: Body): Promise<PutResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.upload(key, body, { IfNoneMatch: '*' });
      } catch (error) {
        // Another conditional write to the key was in flight: retry, and learn which one won.
        // Only a buffered body can be sent again.
        const replayable = !(body instanceof Readable);
        if (!isConditionalConflict((error as Error).cause) || !replayable || attempt > CONFLICT_RETRIES) throw error;
        await sleep(50 * attempt + Math.random() * 50);
      }
    }
  }

  /** Delete up to DELETE_BATCH of the given S3 keys; returns the keys not yet handled. */
  private async deleteBatch(keys: string[]): Promise<string[]> {
    const batch = keys.slice(0, DELETE_BATCH);
    let output;
    try {
      output = this.batchDeleteRefused
        ? { Errors: [] }
        : await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
    } catch (error) {
      // Some S3-compatible stores insist on Content-MD5 (which recent SDKs replaced
      // by CRC32) or lack DeleteObjects: delete one by one instead.
      const status = httpStatus(error);
      if (status !== 400 && status !== 501) throw error;
      this.batchDeleteRefused = true;
      output = { Errors: [] };
    }
    if (this.batchDeleteRefused) {
      for (let i = 0; i < batch.length; i += 8) {
        await Promise.all(batch.slice(i, i + 8).map((Key) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }))));
      }
    }
    const failed = output.Errors?.filter((e) => e.Code !== 'NoSuchKey') ?? [];
    if (failed.length > 0) {
      const first = failed[0];
      throw Object.assign(new Error(`${failed.length} of ${batch.length} objects were not deleted, e.g. "${first.Key?.slice(this.root.length)}": ${first.Message ?? 'refused'}`), {
        Code: first.Code,
      });
    }
    return keys.slice(DELETE_BATCH);
  }

  /** Abort unfinished multipart uploads under an S3 prefix; stores that cannot list them (501) are skipped. */
  private async abortUploads(Prefix: string): Promise<void> {
    try {
      let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
      for (;;) {
        const page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix, ...markers }));
        for (const upload of page.Uploads ?? []) {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }));
        }
        if (!page.IsTruncated) return;
        markers = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
      }
    } catch (error) {
      if (httpStatus(error) === 501 || s3Code(error) === 'NotImplemented') return;
      throw s3Error(this.location, 'cannot abort unfinished uploads', error);
    }
  }

  /** Does the store refuse to overwrite when told If-None-Match: *? Writes and removes one small object. */
  private async probeConditionalPut(): Promise<boolean> {
    const Key = `${this.root}${PROBE_PREFIX}${randomBytes(8).toString('hex')}`;
    const put = (extra: Partial<PutObjectCommandInput>) =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: 'probe', ...this.writeParams, ...extra }));
    try {
      await put({});
      try {
        await put({ IfNoneMatch: '*' });
        return false; // the overwrite went through: the header was ignored
      } catch (error) {
        if (isPreconditionFailed(error)) return true;
        if (httpStatus(error) === 501 || s3Code(error) === 'NotImplemented') return false;
        throw error;
      }
    } catch (error) {
      throw s3Error(this.location, 'cannot check whether the store supports conditional writes', error);
    } finally {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })).catch(() => undefined);
    }
  }
}

export function createS3Storage(options: S3StorageOptions, context: { logger: Logger; configDir: string }): S3Storage {
  return new S3Storage(options, context);
}

/** Probe objects live at the repository root under this name for a moment; list() hides them. */
const PROBE_PREFIX = '.pgharbor-probe-';

/**
 * Count the bytes going through, and note when the body itself fails. When
 * the upload gives up first (the store failed), Node tears the streams down
 * with an AbortError: a consequence, not the body's failure.
 */
async function* countBytes(body: Readable, add: (bytes: number) => void, source: { failure: unknown }): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer);
      add(bytes.byteLength);
      yield bytes;
    }
  } catch (error) {
    if ((error as Error | undefined)?.name !== 'AbortError') source.failure = error;
    throw error;
  }
}

/** "a/b/" or "" — the prefix of every key of the repository. */
function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '';
  try {
    assertValidKey(trimmed);
  } catch {
    throw new ConfigError(`s3 storage: prefix "${prefix}" is not a valid key prefix`, 'use a path such as "pgharbor/prod", without "." or ".." parts');
  }
  return `${trimmed}/`;
}

/** "s3://bucket/prefix/ at host:port": where the repository is, never with credentials. */
function describeLocation(options: S3StorageOptions, root: string): string {
  let where = '';
  if (options.endpoint) {
    try {
      where = ` at ${new URL(options.endpoint).host}`;
    } catch {
      throw new ConfigError(`s3 storage: endpoint "${options.endpoint}" is not a URL`, 'e.g. "https://minio.local:9000"');
    }
  }
  return `s3://${options.bucket}/${root}${where}`;
}

function checkRange(range: ByteRange | undefined): { offset: number; length: number | undefined } {
  if (range === undefined) return { offset: 0, length: undefined };
  const { offset, length } = range;
  if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) {
    throw new RangeError(`invalid byte range ${JSON.stringify(range)}: offset and length must be non-negative integers`);
  }
  return { offset, length };
}

function isValidKey(key: string): boolean {
  try {
    assertValidKey(key);
    return true;
  } catch {
    return false;
  }
}
