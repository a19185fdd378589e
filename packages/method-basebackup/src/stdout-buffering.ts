import { execFile } from 'node:child_process';

/** pg_basebackup's stdout buffer when it streams the tar to us (see withLargeStdoutBuffer). */
const STDOUT_BUFFER = '1M';

let probe: Promise<boolean> | undefined;

/**
 * pg_basebackup -D - writes each ~32 KB message the server sends with its
 * own write(2); every one woke pgharbor for a ~30 KB read (50,000 reads and
 * wakeups for 1.5 GB on top of parsing). Run under coreutils' `stdbuf -o1M`,
 * its stdout is fully buffered and the pipe carries 1 MiB writes: half the
 * reads, fewer context switches. Only where `stdbuf` works (GNU coreutils
 * with its preload library); elsewhere pg_basebackup runs as before.
 * PGHARBOR_NO_STDBUF=1 turns it off.
 */
export async function withLargeStdoutBuffer(tool: string, args: string[]): Promise<[string, string[]]> {
  if (process.env.PGHARBOR_NO_STDBUF === '1' || !(await stdbufWorks())) return [tool, args];
  return ['stdbuf', [`-o${STDOUT_BUFFER}`, tool, ...args]];
}

function stdbufWorks(): Promise<boolean> {
  probe ??= new Promise((resolve) => {
    execFile('stdbuf', [`-o${STDOUT_BUFFER}`, 'true'], { timeout: 10_000 }, (error) => resolve(!error));
  });
  return probe;
}
