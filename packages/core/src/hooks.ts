import { AsyncSeriesBailHook, AsyncSeriesHook, SyncHook } from 'tapable';
import type { BackupManifest, ManifestFile } from './repository/manifest.js';
import type { CheckContext, CheckResult } from './check/check-context.js';
import type { ServerHandle } from './server-handle.js';

/**
 * Every extension point pgharbor offers, declared in one place (as webpack's
 * Compiler does). Taps on "before" bail hooks may veto the operation by
 * returning a reason string; every other hook observes. Per-file hooks are
 * synchronous because they run on the hot path: keep those taps cheap.
 */

/** What a backup hook knows about the backup in progress. */
export interface BackupEvent {
  server: string;
  backupId: string;
  method: string;
  /** Repository location (never contains secrets). */
  repository: string;
}

export interface ArchiveEvent {
  server: string;
  /** WAL segment, .partial, .history or .backup file name. */
  walFile: string;
  repository?: string;
}

export interface RetentionEvent {
  server: string;
  repository: string;
  /** A backup id, or a WAL range "first..last". */
  subject: string;
  kind: 'backup' | 'wal';
  reason: string;
}

export interface RecoveryEvent {
  server: string;
  backupId: string;
  destination: string;
  repository: string;
}

export interface RestoreResult {
  files: number;
  bytes: number;
  seconds: number;
}

export type ReceiverState = 'starting' | 'streaming' | 'stopped' | 'failed';

export function createHooks() {
  return Object.freeze({
    backup: Object.freeze({
      /** Before anything is written. Return a string to veto (it becomes the error message). */
      before: new AsyncSeriesBailHook<[BackupEvent], string | undefined | void>(['event']),
      /** After the STARTED manifest is written, before any data is copied. */
      started: new AsyncSeriesHook<[BackupEvent, BackupManifest]>(['event', 'manifest']),
      /** After each data file is stored (sync: hot path). */
      fileStored: new SyncHook<[BackupEvent, ManifestFile]>(['event', 'file']),
      /** After the manifest is marked DONE. */
      after: new AsyncSeriesHook<[BackupEvent, BackupManifest]>(['event', 'manifest']),
      /** After the backup is marked FAILED, or could not start (then `backupId` is "" if no id was chosen yet). */
      failed: new AsyncSeriesHook<[BackupEvent, Error]>(['event', 'error']),
      /** Before a backup is deleted (`delete`, or retention). Return a string to keep it. */
      beforeDelete: new AsyncSeriesBailHook<[BackupEvent], string | undefined | void>(['event']),
      deleted: new AsyncSeriesHook<[BackupEvent]>(['event']),
      deleteFailed: new AsyncSeriesHook<[BackupEvent, Error]>(['event', 'error']),
    }),
    archive: Object.freeze({
      /** Before a WAL file is pushed. Return a string to veto. */
      beforePush: new AsyncSeriesBailHook<[ArchiveEvent], string | undefined | void>(['event']),
      pushed: new AsyncSeriesHook<[ArchiveEvent]>(['event']),
      pushFailed: new AsyncSeriesHook<[ArchiveEvent, Error]>(['event', 'error']),
      fetched: new AsyncSeriesHook<[ArchiveEvent]>(['event']),
      fetchFailed: new AsyncSeriesHook<[ArchiveEvent, Error]>(['event', 'error']),
      /** The streaming receiver (pg_receivewal) changed state. */
      receiverState: new AsyncSeriesHook<[string, ReceiverState, string | undefined]>(['server', 'state', 'detail']),
    }),
    retention: Object.freeze({
      /** Before a backup or WAL range expires. Return a string to keep it. */
      beforeExpire: new AsyncSeriesBailHook<[RetentionEvent], string | undefined | void>(['event']),
      expired: new AsyncSeriesHook<[RetentionEvent]>(['event']),
    }),
    recovery: Object.freeze({
      /** Before anything is written to the destination. Return a string to veto. */
      before: new AsyncSeriesBailHook<[RecoveryEvent], string | undefined | void>(['event']),
      /** After each file is restored and verified (sync: hot path). */
      fileRestored: new SyncHook<[RecoveryEvent, ManifestFile]>(['event', 'file']),
      /** After recovery configuration (signal files, restore_command, targets) is written. */
      configWritten: new AsyncSeriesHook<[RecoveryEvent, string[]]>(['event', 'settings']),
      after: new AsyncSeriesHook<[RecoveryEvent, RestoreResult]>(['event', 'result']),
      failed: new AsyncSeriesHook<[RecoveryEvent, Error]>(['event', 'error']),
    }),
    /** `pgharbor check`: every plugin adds its own checks through the context. */
    check: new AsyncSeriesHook<[CheckContext]>(['check']),
    /** After `pgharbor check` ran every check, with all the results (observe). */
    checked: new AsyncSeriesHook<[ServerHandle, CheckResult[]]>(['server', 'results']),
  });
}

export type HarborHooks = ReturnType<typeof createHooks>;
