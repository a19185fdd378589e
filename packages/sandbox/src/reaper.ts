/**
 * Last-resort cleanup of postmasters this process started, so a crashed or interrupted test run
 * doesn't leave servers holding ports and shared memory. Only synchronous work is possible in
 * 'exit', so we send SIGQUIT (immediate shutdown) and let the postmaster take its children down.
 */
const live = new Set<number>();
let installed = false;

function killAll(): void {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      /* already gone */
    }
  }
  live.clear();
}

function onSignal(sig: NodeJS.Signals): void {
  killAll();
  // Our listener suppressed the default action; re-raise it unless someone else handles the signal.
  if (process.listenerCount(sig) === 1) {
    process.removeListener(sig, onSignal);
    process.kill(process.pid, sig);
  }
}

export function track(pid: number): void {
  if (!installed) {
    installed = true;
    process.on('exit', killAll);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  live.add(pid);
}

export function untrack(pid: number): void {
  live.delete(pid);
}
