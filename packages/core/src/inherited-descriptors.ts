import { closeSync, readFileSync, readdirSync } from 'node:fs';

/**
 * For the processes pgharbor leaves running (the WAL server, the async
 * archiver, a receive-wal started by cron, the notification flusher): close what the caller passed down without close-on-exec (from
 * PostgreSQL, a shell, a CI runner). A process that stays for minutes must
 * not hold the write end of a pipe somebody reads to its end, or a lock.
 * Node's and libuv's own descriptors all have close-on-exec, and Node sets
 * it on 0-15 when it starts (uv_disable_stdio_inheritance); what is left is
 * what came after a gap, like a descriptor of PostgreSQL's. 0-2 are the
 * log. Linux only (/proc); elsewhere they stay open.
 */
export function closeInheritedDescriptors(): void {
  let entries: string[];
  try {
    entries = readdirSync('/proc/self/fd');
  } catch {
    return;
  }
  for (const entry of entries) {
    const fd = Number(entry);
    if (fd <= 2) continue;
    try {
      const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
      if (flags && (parseInt(flags[1], 8) & 0o2000000) === 0) closeSync(fd);
    } catch {
      // the directory listing's own descriptor, already closed
    }
  }
}
