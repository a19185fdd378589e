/**
 * s3rver 3.7.1 ignores `If-None-Match: *` on writes, which AWS S3 (since
 * August 2024), MinIO and Ceph honour: PutObject and CompleteMultipartUpload
 * fail with 412 PreconditionFailed when the key exists, atomically. This Koa
 * middleware, run before s3rver's own, adds that behaviour so that tests
 * exercise the code path real stores take. Writes carrying the header are
 * serialized per key (check, then write, under one lock); the answer follows
 * AWS's documented error body.
 */
interface KoaContext {
  method: string;
  path: string;
  query: Record<string, unknown>;
  req: AsyncIterable<unknown>;
  get(header: string): string;
  status: number;
  type: string;
  body: unknown;
}
type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

interface ObjectStore {
  existsObject(bucket: string, key: string): Promise<boolean>;
}

export function conditionalWrites(store: ObjectStore): Middleware {
  const locks = new Map<string, Promise<void>>();
  return async (ctx, next) => {
    const target = conditionalWriteTarget(ctx);
    if (!target) return next();
    const id = `${target.bucket}/${target.key}`;
    const previous = locks.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const chained = previous.then(() => mine);
    locks.set(id, chained);
    await previous;
    try {
      if (await store.existsObject(target.bucket, target.key)) {
        for await (const _ of ctx.req) {
          // Read the request body before answering, as S3 does, so the client sees our answer and not a reset.
        }
        ctx.status = 412;
        ctx.type = 'application/xml';
        ctx.body =
          '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>' +
          '<Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition></Error>';
        return;
      }
      await next();
    } finally {
      release();
      if (locks.get(id) === chained) locks.delete(id);
    }
  };
}

/** A path-style PutObject or CompleteMultipartUpload with `If-None-Match: *`, or undefined. */
function conditionalWriteTarget(ctx: KoaContext): { bucket: string; key: string } | undefined {
  if (ctx.get('if-none-match') !== '*') return undefined;
  const isPut = ctx.method === 'PUT' && !('partNumber' in ctx.query) && !ctx.get('x-amz-copy-source');
  const isComplete = ctx.method === 'POST' && 'uploadId' in ctx.query;
  if (!isPut && !isComplete) return undefined;
  const match = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
  if (!match) return undefined;
  return { bucket: decodeURIComponent(match[1]), key: decodeURIComponent(match[2]) };
}
