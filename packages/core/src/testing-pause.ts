/**
 * For tests that kill a command at a chosen step (interrupted deletes):
 * with PGHARBOR_TEST_PAUSE_AT=<step>, the process says "paused at <step>"
 * on stderr when it reaches that step and waits there until it is killed.
 * Deterministic where a sleep would race. Costs one environment lookup.
 */
export async function pauseForTest(step: string): Promise<void> {
  if (process.env.PGHARBOR_TEST_PAUSE_AT !== step) return;
  process.stderr.write(`paused at ${step}\n`);
  await new Promise<never>(() => setInterval(() => {}, 60_000));
}
