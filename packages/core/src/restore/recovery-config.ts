import fs from 'node:fs/promises';
import path from 'node:path';
import type { RecoveryTarget } from './recovery-target.js';
import { pgMajor } from '../repository/server-identity.js';

export interface RecoveryConfigInput {
  destination: string;
  pgVersion: number;
  backupId: string;
  target: RecoveryTarget;
  /** restore_command, or undefined to recover from the WAL inside the backup only. */
  restoreCommand?: string;
  /** recovery_end_command, run once when recovery ends (before promotion completes). */
  recoveryEndCommand?: string;
  standby?: { primaryConninfo?: string; slot?: string };
  /** Write archive_mode = off so that a restored copy never archives into the production repository. */
  disableArchiving: boolean;
  /**
   * A copy (not the server recovering in place, not a standby): clear what
   * makes it wait on or write to its origin, except what `keep` names.
   */
  detach?: { keepSync?: boolean; keepSubscriptions?: boolean };
  /** Whether to write recovery.signal at all (archive recovery). */
  archiveRecovery: boolean;
}

export interface RecoveryConfigResult {
  /** The lines written, for hooks and for the user. */
  settings: string[];
  /** Dangerous settings that were changed, with why. */
  changed: string[];
  file: string;
}

/** Settings that are not recovery settings: before PostgreSQL 12 they go to postgresql.auto.conf, not recovery.conf. */
const SERVER_SETTING = /^(archive_mode|synchronous_standby_names|max_logical_replication_workers) =/;

const quote = (value: string) => `'${value.replace(/'/g, "''")}'`;

/**
 * Write the recovery settings the server version needs: PostgreSQL 12+
 * reads them from postgresql.auto.conf and enters recovery when
 * recovery.signal (or standby.signal) exists; older versions read
 * recovery.conf.
 */
export async function writeRecoveryConfig(input: RecoveryConfigInput): Promise<RecoveryConfigResult> {
  const { target } = input;
  const settings: string[] = [];
  if (input.restoreCommand) settings.push(`restore_command = ${quote(input.restoreCommand)}`);
  if (input.recoveryEndCommand) settings.push(`recovery_end_command = ${quote(input.recoveryEndCommand)}`);
  if (target.time !== undefined) settings.push(`recovery_target_time = ${quote(target.time)}`);
  if (target.xid !== undefined) settings.push(`recovery_target_xid = ${quote(target.xid)}`);
  if (target.lsn !== undefined) settings.push(`recovery_target_lsn = ${quote(target.lsn)}`);
  if (target.name !== undefined) settings.push(`recovery_target_name = ${quote(target.name)}`);
  if (target.immediate) settings.push(`recovery_target = 'immediate'`);
  if (target.exclusive) settings.push(`recovery_target_inclusive = off`);
  if (target.action) settings.push(`recovery_target_action = ${quote(target.action)}`);
  if (target.timeline) settings.push(`recovery_target_timeline = ${quote(target.timeline)}`);
  if (input.standby?.primaryConninfo) settings.push(`primary_conninfo = ${quote(input.standby.primaryConninfo)}`);
  if (input.standby?.slot) settings.push(`primary_slot_name = ${quote(input.standby.slot)}`);
  const changed: string[] = [];
  if (input.disableArchiving) {
    settings.push(`archive_mode = 'off'`);
    changed.push("archive_mode = 'off': a restored copy must not archive into the production repository (restore with --archive-mode preserve to keep archiving)");
  }
  if (input.detach && !input.standby) {
    // The origin's synchronous standbys (or its synchronous receive-wal) are not this copy's: with
    // the setting kept, its first commit after promotion waits forever (wait_event SyncRep).
    if (!input.detach.keepSync) {
      settings.push(`synchronous_standby_names = ''`);
      changed.push("synchronous_standby_names = '': no standby confirms a copy's commits, which would wait forever (restore with --keep-sync to keep it)");
    }
    // A subscription restored with the data connects to its publisher and consumes from the
    // production slot: the copy would steal changes the real subscriber never sees.
    if (!input.detach.keepSubscriptions) {
      settings.push('max_logical_replication_workers = 0');
      changed.push('max_logical_replication_workers = 0: subscriptions restored with the data would consume the publisher\'s slots (restore with --keep-subscriptions to keep them running)');
    }
  }

  const legacy = pgMajor(input.pgVersion) < 12;
  const file = path.join(input.destination, legacy ? 'recovery.conf' : 'postgresql.auto.conf');
  await removeStaleRecoverySettings(path.join(input.destination, 'postgresql.auto.conf'));
  const recoveryLines = legacy ? settings.filter((s) => !SERVER_SETTING.test(s)) : settings;
  if (legacy && input.standby) recoveryLines.push(`standby_mode = 'on'`);
  if (recoveryLines.length > 0 || legacy) {
    const block = [`# written by pgharbor restore of backup ${input.backupId} at ${new Date().toISOString()}`, ...recoveryLines, ''].join('\n');
    await appendDurably(file, (await exists(file)) && !legacy ? '\n' + block : block);
  }
  const serverLines = settings.filter((s) => SERVER_SETTING.test(s));
  if (legacy && serverLines.length) await appendDurably(path.join(input.destination, 'postgresql.auto.conf'), `\n${serverLines.join('\n')}\n`);
  if (!legacy) {
    if (input.standby) await writeEmpty(path.join(input.destination, 'standby.signal'));
    else if (input.archiveRecovery) await writeEmpty(path.join(input.destination, 'recovery.signal'));
  }
  return { settings, changed, file };
}

/**
 * A backup of a server that was itself restored carries the recovery
 * settings of that restore in postgresql.auto.conf (an old
 * recovery_target_time would stop the next recovery in the past): drop
 * them before writing ours, as pgBackRest does.
 */
const RECOVERY_SETTINGS = /^\s*(restore_command|recovery_target\w*|primary_conninfo|primary_slot_name|recovery_end_command|standby_mode)\s*=/i;

async function removeStaleRecoverySettings(file: string): Promise<void> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return;
  }
  const lines = text.split('\n');
  const kept = lines.filter((line) => !RECOVERY_SETTINGS.test(line) && !line.startsWith('# written by pgharbor restore'));
  if (kept.length === lines.length) return;
  const temporary = `${file}.pgharbor-tmp`;
  await fs.writeFile(temporary, kept.join('\n'), { mode: 0o600 });
  await fs.rename(temporary, file);
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(() => true, () => false);
}

async function appendDurably(file: string, text: string): Promise<void> {
  const handle = await fs.open(file, 'a', 0o600);
  try {
    await handle.write(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeEmpty(file: string): Promise<void> {
  await appendDurably(file, '');
}
