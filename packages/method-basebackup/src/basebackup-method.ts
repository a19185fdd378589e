import { Readable } from 'node:stream';
import type pg from 'pg';
import {
  ConfigError,
  HarborError,
  TarFormatError,
  decompressArchiveStream,
  parseBackupLabel,
  parseLsn,
  pgMajor,
  queryServerInfo,
  walFileBefore,
  type BackupMethod,
  type MethodContext,
  type MethodResult,
} from '@pgharbor/core';
import { ARCHIVE_SUFFIX, baseBackupCommand, parseMaxRate, parseServerCompression } from './base-backup-command.js';
import { receiveBaseBackup } from './base-backup-stream.js';
import { ReplicationSession, ServerError } from './replication-session.js';
import { summaryPlan, withoutIncrementalLines } from './summary-plan.js';
import { backupStreamError } from './basebackup-error.js';
import { ProtocolError } from './protocol-messages.js';

interface BasebackupOptions {
  immediate_checkpoint?: boolean;
  max_rate?: string;
  label?: string;
  server_compression?: string;
  staging_dir?: string;
}

/** The majors whose BASE_BACKUP pgharbor speaks: 13 brought the backup manifest. */
export const OLDEST_MAJOR = 13;
export const NEWEST_MAJOR = 18;

/**
 * Backups by streaming replication: pgharbor sends BASE_BACKUP on a
 * replication connection of its own and stores the tar stream of each
 * tablespace as it arrives (no pg_basebackup, no staging copy).
 */
export const basebackupMethod: BackupMethod = {
  // Its tar goes through sink.ingestTar, which stores relation files as blocks: it takes diff and incr backups.
  incremental: true,
  serverOptions: {
    immediate_checkpoint: {
      type: 'boolean',
      description: 'true: ask for a fast checkpoint so the backup starts at once; false (default): wait for a spread checkpoint',
    },
    max_rate: { type: 'string', pattern: '^[0-9]+[kM]?$', description: 'transfer rate limit on the server, kB/s or with k/M, e.g. "32M" (as pg_basebackup --max-rate)' },
    label: { type: 'string', maxLength: 1023, description: "the backup label PostgreSQL writes into backup_label (default: \"pgharbor backup <id>\"); the CLI's --label wins" },
    server_compression: {
      type: 'string',
      pattern: '^(none|(gzip|lz4|zstd)(:[0-9]{1,2})?)$',
      description: 'PostgreSQL 15+: the server compresses the stream (none, gzip, lz4, zstd, optionally :LEVEL), for a network slower than the disk; pgharbor decompresses it before storing',
    },
    staging_dir: {
      type: 'string',
      description: 'unused since pgharbor speaks BASE_BACKUP itself (tablespaces stream without a staging copy); accepted so that older configs validate',
    },
  },

  async run(context: MethodContext): Promise<MethodResult> {
    const { server, logger, signal } = context;
    const options = server.config as BasebackupOptions;
    if (options.staging_dir !== undefined) logger.warn(`server ${server.name}: staging_dir is no longer used by the basebackup method (tablespaces stream without a staging copy): remove it from the config`);
    const compression = parseServerCompression(options.server_compression);
    const maxRateKb = options.max_rate ? parseMaxRate(options.max_rate) : undefined;

    const client = await server.connect();
    let session: ReplicationSession | undefined;
    const onAbort = () => session?.abort(signal.reason instanceof Error ? signal.reason : new Error('backup aborted'));
    try {
      const info = await queryServerInfo(client);
      const major = pgMajor(info.versionNum);
      if (major < OLDEST_MAJOR) {
        throw new HarborError(`server ${server.name}: PostgreSQL ${major} is too old for the basebackup method (BASE_BACKUP with a backup manifest needs ${OLDEST_MAJOR} or later)`, {
          hint: 'upgrade the server, or use method: rsync',
        });
      }
      if (major > NEWEST_MAJOR) logger.warn(`server ${server.name}: PostgreSQL ${major} is newer than this pgharbor knows (${NEWEST_MAJOR}); speaking BASE_BACKUP as to ${NEWEST_MAJOR}`);
      const command = (incremental: boolean): string => {
        try {
          return baseBackupCommand({ versionNum: info.versionNum, label: context.label, fastCheckpoint: options.immediate_checkpoint ?? false, maxRateKb, compression, incremental });
        } catch (error) {
          if (error instanceof ConfigError) throw new ConfigError(`server ${server.name}: ${error.message}`, error.hint);
          throw error;
        }
      };
      command(false); // a setting the server's major refuses fails before anything starts
      const sizes = await client.query(`SELECT sum(pg_database_size(oid))::bigint AS size FROM pg_database`);
      context.setExpectedBytes(Number(sizes.rows[0].size));
      // WAL comes inside the main tar at the end of the backup: a temporary
      // slot, reserved now and gone with this session, keeps the server from
      // recycling it meanwhile (wal_keep_size need not be tuned for us).
      await reserveWal(client, context.backupId);
      let summaries = await summaryPlan(client, context, major, info.timeline);
      if (summaries.use === false && summaries.reason) logger.info(`server ${server.name}: ${context.type} backup by block checksums, not WAL summaries: ${summaries.reason}`);

      let labelText: Buffer | undefined;
      let positions: Awaited<ReturnType<typeof receiveBaseBackup>> | undefined;
      let received = 0;
      while (!positions) {
        const incremental = summaries.use;
        session = new ReplicationSession(await server.connectStreaming({ application_name: 'pgharbor_backup' }), (notice) => logger.info(`server ${server.name}: ${notice}`));
        if (signal.aborted) throw signal.reason;
        signal.addEventListener('abort', onAbort, { once: true });
        let streaming = false;
        try {
          if (incremental) await session.uploadManifest(summaries.manifest!);
          session.send(command(incremental));
          positions = await receiveBaseBackup(session.messages, info.versionNum >= 150000, compression ? ARCHIVE_SUFFIX[compression.algorithm] : '', {
            onArchive: (archive, data) => {
              streaming = true;
              return ingestArchive(archive.name, async () => {
                const tar = compression ? Readable.from(decompressArchiveStream(data, compression.algorithm), { objectMode: false, highWaterMark: 256 * 1024 }) : data;
                if (archive.tablespace) {
                  await context.sink.ingestTar(tar, { pathPrefix: `pg_tblspc/${archive.tablespace.oid}`, incrementalFiles: incremental });
                } else {
                  // backup_manifest comes on its own (15+: after 'm'; 13/14: its own CopyOut): one inside the tar would be forged.
                  const captured = await context.sink.ingestTar(tar, {
                    capture: ['backup_label'],
                    skip: ['backup_manifest'],
                    incrementalFiles: incremental,
                    // As pg_combinebackup writes it: a server refuses to start from a label naming the backup incremental.
                    ...(incremental ? { rewrite: { backup_label: withoutIncrementalLines } } : {}),
                  });
                  labelText = captured.get('backup_label');
                }
              });
            },
            // An incremental's own manifest lists INCREMENTAL.* files, not what restore writes: pg_verifybackup could not check it.
            onManifest: (content) => (incremental ? Promise.resolve() : context.sink.storePgBackupManifest(content)),
          });
          received = session.bytesReceived;
        } catch (error) {
          // The server refused the incremental before sending a byte (no summaries for the range, summarization off...): a full stream is diffed by checksums instead.
          if (!incremental || streaming || !(error instanceof ServerError) || signal.aborted) throw error;
          logger.info(`server ${server.name}: ${context.type} backup by block checksums, not WAL summaries: the server refused the incremental backup: ${error.message}`);
          summaries = { use: false };
          signal.removeEventListener('abort', onAbort);
          session.close();
          session = undefined;
        }
      }
      logger.info(`server ${server.name}: received ${received} bytes from the server${summaries.use ? ` (incremental from WAL summaries since ${context.parent!.id})` : ''}`);

      if (!labelText) throw new HarborError(`server ${server.name}: the backup stream had no backup_label`, { hint: 'is streaming_conninfo a PostgreSQL server? the backup is marked FAILED' });
      const backupLabel = parseBackupLabel(labelText.toString('utf8'));
      if (parseLsn(backupLabel.startLsn) !== parseLsn(positions.startLsn) || backupLabel.timeline !== positions.startTimeline) {
        throw new HarborError(`server ${server.name}: backup_label says the backup starts at ${backupLabel.startLsn} on timeline ${backupLabel.timeline}, the server said ${positions.startLsn} on ${positions.startTimeline}`, {
          hint: 'the stream is inconsistent: check what answers on streaming_conninfo; the backup is marked FAILED',
        });
      }
      if (parseLsn(positions.endLsn) < parseLsn(positions.startLsn)) {
        throw new HarborError(`server ${server.name}: the backup ends (${positions.endLsn}) before it starts (${positions.startLsn})`, { hint: 'check what answers on streaming_conninfo; the backup is marked FAILED' });
      }
      const spaces = new Set(positions.tablespaces.map((t) => t.oid));
      if (spaces.size !== info.tablespaces.length || info.tablespaces.some((t) => !spaces.has(t.oid))) {
        throw new HarborError(`server ${server.name}: the tablespaces changed during the backup (${[...spaces].join(', ') || 'none'} sent, ${info.tablespaces.map((t) => t.oid).join(', ') || 'none'} listed before)`, {
          hint: 'take the backup again once no tablespace is being created or dropped',
        });
      }
      return {
        startLsn: backupLabel.startLsn,
        stopLsn: positions.endLsn,
        checkpointLsn: backupLabel.checkpointLsn,
        startWal: backupLabel.startWal,
        stopWal: walFileBefore(positions.endTimeline, positions.endLsn, info.walSegmentSize),
        timeline: backupLabel.timeline,
        startTime: backupLabel.startTime,
        walIncluded: true,
        tablespaces: info.tablespaces,
      };
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw backupStreamError(server.name, error);
    } finally {
      signal.removeEventListener('abort', onAbort);
      session?.close();
      await client.end().catch(() => {});
    }
  },
};

async function reserveWal(client: pg.Client, backupId: string): Promise<void> {
  const slot = `pgharbor_${backupId.toLowerCase()}_${process.pid}`;
  await client.query('SELECT pg_create_physical_replication_slot($1, true, true)', [slot]);
}

/**
 * An archive the tar reader or a decompressor cannot read is the server's
 * stream at fault: say which archive. (Storage errors pass unchanged.)
 */
async function ingestArchive(name: string, ingest: () => Promise<void>): Promise<void> {
  try {
    await ingest();
  } catch (error) {
    if (error instanceof TarFormatError || (error instanceof Error && /^(lz4|zstd|not an lz4|compressed stream)|incorrect header check|unexpected end of file|invalid (block type|distance)/.test(error.message))) {
      throw new ProtocolError(`archive ${name}: ${error.message}`);
    }
    throw error;
  }
}
