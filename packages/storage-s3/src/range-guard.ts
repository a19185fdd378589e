import { Readable } from 'node:stream';

/**
 * Some S3-compatible stores answer a byte range with more than was asked:
 * s3rver returns the whole object for "bytes=0-0", others ignore Range
 * entirely (200 with the full body). Compare what the store says it sent
 * (Content-Range) with what was asked, and cut the stream to the requested
 * bytes when they differ. On stores that get it right this is a no-op.
 */
export function enforceRange(body: Readable, contentRange: string | undefined, offset: number, length: number | undefined): Readable {
  const sent = /^bytes (\d+)-(\d+)\//.exec(contentRange ?? '');
  const first = sent ? Number(sent[1]) : 0;
  const count = sent ? Number(sent[2]) - first + 1 : undefined;
  if (first === offset && (length === undefined || (count !== undefined && count <= length))) return body;
  return Readable.from(slice(body, offset - first, length), { objectMode: false });
}

async function* slice(source: Readable, skip: number, limit: number | undefined): AsyncGenerator<Buffer> {
  let left = limit ?? Infinity;
  for await (const data of source) {
    let chunk = data as Buffer;
    if (skip > 0) {
      if (chunk.length <= skip) {
        skip -= chunk.length;
        continue;
      }
      chunk = chunk.subarray(skip);
      skip = 0;
    }
    if (chunk.length > left) chunk = chunk.subarray(0, left);
    left -= chunk.length;
    yield chunk;
    if (left === 0) return; // leaving the loop destroys the source: the rest is never downloaded
  }
}
