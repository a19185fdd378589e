import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE, parseDataRow, parseNotice, readMessages } from './protocol-messages.js';

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header[0] = type.charCodeAt(0);
  header.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
}

async function collect(chunks: Buffer[]): Promise<{ type: string; body: string }[]> {
  const out: { type: string; body: string }[] = [];
  for await (const m of readMessages((async function* () { yield* chunks; })())) out.push({ type: m.type, body: m.body.toString() });
  return out;
}

describe('backend message framing', () => {
  const stream = Buffer.concat([message('d', Buffer.from('hello')), message('c', Buffer.alloc(0)), message('Z', Buffer.from('I'))]);

  it('reads the same messages whatever the read boundaries', async () => {
    const expected = [{ type: 'd', body: 'hello' }, { type: 'c', body: '' }, { type: 'Z', body: 'I' }];
    expect(await collect([stream])).toEqual(expected);
    for (let size = 1; size <= 7; size++) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < stream.length; at += size) chunks.push(stream.subarray(at, at + size));
      expect(await collect(chunks)).toEqual(expected);
    }
  });

  it('refuses a length beyond MAX_MESSAGE before waiting for it, and an impossible one', async () => {
    const huge = Buffer.from([0x64, 0, 0, 0, 0]);
    huge.writeInt32BE(MAX_MESSAGE + 1, 1);
    await expect(collect([huge])).rejects.toThrow(/declares 4194305 bytes, more than the 4194304/);
    await expect(collect([Buffer.from([0x64, 0, 0, 0, 3])])).rejects.toThrow(/impossible length \(3\)/);
  });

  it('a stream cut inside a message is a lost connection', async () => {
    await expect(collect([stream.subarray(0, 8)])).rejects.toThrow(/closed the connection in the middle of a message/);
  });

  it('DataRow and ErrorResponse bodies are read within their bounds', () => {
    const row = Buffer.from([0, 2, 0, 0, 0, 1, 0x41, 0xff, 0xff, 0xff, 0xff]);
    expect(parseDataRow(row, 2)).toEqual(['A', null]);
    expect(() => parseDataRow(row, 1)).toThrow(/2 columns where at most 1/);
    expect(() => parseDataRow(Buffer.from([0, 1, 0, 0, 0, 9, 0x41]), 1)).toThrow(/shorter than its fields/);
    expect(parseNotice(Buffer.from('SERROR\0Mboom\0\0'))).toEqual({ S: 'ERROR', M: 'boom' });
    expect(() => parseNotice(Buffer.from('SERROR'))).toThrow(/no terminating NUL/);
  });
});
