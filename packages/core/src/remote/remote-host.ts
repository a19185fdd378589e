import { HarborError } from '../errors.js';
import { rsyncRemotePath, rsyncShellOption, shellQuote, type SshCommand } from './ssh-command.js';
import { loadExeca } from '../lazy-execa.js';

const PROBE_TIMEOUT_MS = 120_000;

/** What a remote directory holds before a restore writes there. */
export type RemoteDirState =
  | { path: string; state: 'absent' | 'empty' }
  | { path: string; state: 'not-empty'; entries: string[] }
  | { path: string; state: 'not-a-directory' }
  | { path: string; state: 'not-writable'; blocker: string };

export interface RemoteProbe {
  rsync: boolean;
  dirs: RemoteDirState[];
}

/**
 * A host reached through a user-given ssh command line. Remote commands are
 * one string run by the login shell there (that is how ssh works), so every
 * path in them is quoted with shellQuote; locally nothing runs through a shell.
 */
export class RemoteHost {
  constructor(
    readonly ssh: SshCommand,
    /** rsync on the remote host (rsync's --rsync-path); default: rsync on its PATH. */
    readonly rsyncPath = 'rsync',
  ) {}

  get host(): string {
    return this.ssh.host;
  }

  /** Run a POSIX shell script on the host; ssh's own failures (exit 255) become a HarborError naming the host. */
  async run(script: string, what: string, timeoutMs?: number): Promise<string> {
    const [program, ...options] = this.ssh.shell;
    const execa = await loadExeca();
    const result = await execa(program, [...options, this.ssh.destination, script], { reject: false, stdin: 'ignore', ...(timeoutMs ? { timeout: timeoutMs } : {}) });
    const stderr = String(result.stderr ?? '').trim();
    if (result.timedOut) {
      throw new HarborError(`no answer from ${this.host} over ssh ("${this.ssh.text}") within ${timeoutMs! / 1000} s (to ${what})`, {
        hint: `check that \`${this.ssh.text} true\` works from this host as this user without a password prompt; add -o ConnectTimeout=10 to fail faster`,
      });
    }
    if (result.failed && result.exitCode === undefined) {
      throw new HarborError(`cannot run "${this.ssh.text}" to ${what} on ${this.host}: ${result.shortMessage ?? result.message}`, {
        hint: 'check that the ssh program in --remote-ssh-command exists',
      });
    }
    if (result.exitCode === 255) {
      throw new HarborError(`cannot reach ${this.host} over ssh ("${this.ssh.text}"): ${lastLines(stderr) || 'ssh exited with 255'}`, {
        hint: `check that \`${this.ssh.text} true\` works from this host as this user without a password prompt (key authentication, known_hosts)`,
      });
    }
    if (result.exitCode !== 0) {
      throw new HarborError(`could not ${what} on ${this.host}: ${lastLines(stderr) || `exit code ${result.exitCode}`}`, {
        hint: `run it by hand to see why: ${this.ssh.text} ${shellQuote(script)}`,
      });
    }
    return String(result.stdout);
  }

  /**
   * Read-only look at the host before anything is written: is rsync there,
   * and is each directory absent (with a writable ancestor) or empty?
   */
  async probe(dirs: string[]): Promise<RemoteProbe> {
    const script = [
      `if command -v ${shellQuote(this.rsyncPath)} >/dev/null 2>&1; then echo rsync=yes; else echo rsync=no; fi`,
      `for d in ${dirs.map(shellQuote).join(' ')}; do`,
      `  if [ -d "$d" ]; then`,
      `    if [ -n "$(ls -A "$d" 2>/dev/null | head -1)" ]; then printf 'not-empty\\t%s\\n' "$(ls -A "$d" | head -3 | tr '\\n' ' ')";`,
      `    elif [ -w "$d" ]; then echo empty; else printf 'not-writable\\t%s\\n' "$d"; fi`,
      `  elif [ -e "$d" ] || [ -L "$d" ]; then echo not-a-directory;`,
      `  else p=$(dirname "$d"); while [ ! -e "$p" ]; do p=$(dirname "$p"); done;`,
      `    if [ -d "$p" ] && [ -w "$p" ]; then echo absent; else printf 'not-writable\\t%s\\n' "$p"; fi`,
      `  fi`,
      `done`,
    ].join('\n');
    // Bounded: this is the first contact, and a host that drops packets would otherwise hang the restore.
    const lines = (await this.run(script, 'inspect the restore destination', PROBE_TIMEOUT_MS)).split('\n').filter((l) => l.length > 0);
    const rsync = lines.shift() === 'rsync=yes';
    return {
      rsync,
      dirs: dirs.map((path, i): RemoteDirState => {
        const [state, detail = ''] = (lines[i] ?? 'unknown').split('\t');
        if (state === 'absent' || state === 'empty' || state === 'not-a-directory') return { path, state };
        if (state === 'not-empty') return { path, state, entries: detail.trim().split(' ').filter(Boolean) };
        if (state === 'not-writable') return { path, state, blocker: detail };
        throw new HarborError(`unexpected answer from ${this.host} about ${path}: ${lines[i] ?? '(none)'}`, { hint: 'is the login shell there a POSIX shell?' });
      }),
    };
  }

  /** Create directories (and parents), mode 0700 as PostgreSQL requires for its data directory. */
  async makeDirectories(dirs: string[]): Promise<void> {
    const quoted = dirs.map(shellQuote).join(' ');
    await this.run(`mkdir -p ${quoted} && chmod 700 ${quoted}`, `create ${dirs.join(', ')}`);
  }

  /** Make what was written under `dir` durable (syncfs where `sync -f` exists, else a global sync). */
  async sync(dir: string): Promise<void> {
    await this.run(`sync -f ${shellQuote(dir)} 2>/dev/null || sync`, `sync ${dir}`);
  }

  /**
   * rsync `source` to `remotePath` on the host: recursive, symlinks as
   * symlinks, permissions and times kept; the files belong to the ssh user
   * there. A trailing slash on `source` copies its contents.
   */
  async push(source: string, remotePath: string, extra: string[] = []): Promise<void> {
    const args = ['-rlpt', ...extra, '-e', rsyncShellOption(this.ssh.shell), `--rsync-path=${this.rsyncPath}`, source, rsyncRemotePath(this.ssh.destination, remotePath)];
    const execa = await loadExeca();
    const result = await execa('rsync', args, { reject: false, stdin: 'ignore' });
    if (result.failed && result.exitCode === undefined) {
      throw new HarborError(`cannot run rsync on this host: ${result.shortMessage ?? result.message}`, { hint: 'install rsync here (and on the destination host)' });
    }
    if (result.exitCode !== 0) {
      throw new HarborError(`rsync of ${source} to ${this.host}:${remotePath} failed (exit code ${result.exitCode}): ${lastLines(String(result.stderr ?? '').trim())}`, {
        hint: `check the ssh access, free space and permissions on ${this.host}`,
      });
    }
  }
}

function lastLines(text: string, count = 3): string {
  return text.split('\n').filter(Boolean).slice(-count).join(' / ');
}
