import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import {
  HarborError,
  loadExeca,
  parseBackupLabel,
  parseLsn,
  queryServerInfo,
  walFileBefore,
  type BackupMethod,
  type MethodContext,
  type MethodResult,
} from '@pgharbor/core';
import { parseEndLsn, pgBasebackupArgs } from './pg-basebackup-args.js';
import { basebackupError } from './basebackup-error.js';
import { withLargeStdoutBuffer } from './stdout-buffering.js';

interface BasebackupOptions {
  immediate_checkpoint?: boolean;
  max_rate?: string;
  staging_dir?: string;
}

/** Backups by streaming replication: pg_basebackup's tar stream, stored as it arrives. */
export const basebackupMethod: BackupMethod = {
  serverOptions: {
    immediate_checkpoint: {
      type: 'boolean',
      description: 'true: ask for a fast checkpoint so the backup starts at once; false (default): wait for a spread checkpoint',
    },
    max_rate: { type: 'string', pattern: '^[0-9]+[kM]?$', description: 'pg_basebackup --max-rate, e.g. "32M"' },
    staging_dir: {
      type: 'string',
      description: 'local directory for the tar files of a cluster with tablespaces (pg_basebackup cannot stream those to stdout)',
    },
  },

  async run(context: MethodContext): Promise<MethodResult> {
    const { server } = context;
    const options = server.config as BasebackupOptions;
    const client = await server.connect();
    try {
      const info = await queryServerInfo(client);
      const sizes = await client.query(`SELECT sum(pg_database_size(oid))::bigint AS size FROM pg_database`);
      context.setExpectedBytes(Number(sizes.rows[0].size));
      // -X fetch sends the WAL at the end of the backup: a temporary slot,
      // reserved now and gone with this session, keeps the server from
      // recycling it meanwhile (wal_keep_size need not be tuned for us).
      await reserveWal(client, context.backupId);

      // The password goes into pg_basebackup's environment, never its command line (ps shows that to everyone).
      const { conninfo, env } = server.toolConnection({ application_name: 'pgharbor_backup' });
      const tool = server.pgTool('pg_basebackup', info.versionNum);
      const common = { conninfo, env, label: context.label, fastCheckpoint: options.immediate_checkpoint ?? false, maxRate: options.max_rate };
      const multiTablespace = info.tablespaces.length > 0;

      let captured: Map<string, Buffer>;
      let stderr: string;
      if (!multiTablespace) {
        ({ captured, stderr } = await streamToSink(context, tool, pgBasebackupArgs({ ...common, target: '-' }), env));
      } else {
        ({ captured, stderr } = await viaStaging(context, tool, common, options.staging_dir));
      }

      const labelText = captured.get('backup_label');
      if (!labelText) throw new HarborError(`server ${server.name}: pg_basebackup sent no backup_label`, { hint: 'is this a PostgreSQL data directory stream? report this as a bug' });
      const label = parseBackupLabel(labelText.toString('utf8'));
      const pgManifest = captured.get('backup_manifest');
      if (pgManifest) await context.sink.storePgBackupManifest(pgManifest);
      const stopLsn = parseEndLsn(stderr) ?? manifestEndLsn(pgManifest);
      if (!stopLsn) throw new HarborError(`server ${server.name}: could not learn the backup's end LSN from pg_basebackup`, { hint: 'report this as a bug with the pg_basebackup version' });
      return {
        startLsn: label.startLsn,
        stopLsn,
        checkpointLsn: label.checkpointLsn,
        startWal: label.startWal,
        stopWal: walFileBefore(label.timeline, stopLsn, info.walSegmentSize),
        timeline: label.timeline,
        startTime: label.startTime,
        walIncluded: true,
        tablespaces: info.tablespaces,
      };
    } finally {
      await client.end().catch(() => {});
    }
  },
};

async function reserveWal(client: pg.Client, backupId: string): Promise<void> {
  const slot = `pgharbor_${backupId.toLowerCase()}_${process.pid}`;
  await client.query('SELECT pg_create_physical_replication_slot($1, true, true)', [slot]);
}

/** Run pg_basebackup with the tar on stdout and feed it to the sink. */
async function streamToSink(context: MethodContext, tool: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ captured: Map<string, Buffer>; stderr: string }> {
  const [command, argv] = await withLargeStdoutBuffer(tool, args);
  const execa = await loadExeca();
  const child = execa(command, argv, {
    env,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    cancelSignal: context.signal,
    forceKillAfterDelay: 5_000,
  });
  const stderr = collectTail(child.stderr!);
  let captured: Map<string, Buffer>;
  try {
    captured = await context.sink.ingestTar(child.stdout!, { capture: ['backup_label', 'backup_manifest'], skip: ['backup_manifest'] });
  } catch (error) {
    const killedByUs = child.kill('SIGTERM');
    const result = await child;
    // pg_basebackup died first (an exit code, or a signal that was not ours): its words explain the failure.
    if (result.exitCode || (result.signal && !(killedByUs && result.signal === 'SIGTERM'))) {
      throw basebackupError(context.server.name, result.exitCode, result.signal, stderr.text());
    }
    throw error;
  }
  const result = await child;
  if (result.exitCode !== 0 || result.signal) throw basebackupError(context.server.name, result.exitCode, result.signal, stderr.text());
  return { captured, stderr: stderr.text() };
}

/**
 * Clusters with tablespaces: pg_basebackup writes one tar per tablespace
 * into a local staging directory, which is then ingested and removed.
 */
async function viaStaging(
  context: MethodContext,
  tool: string,
  common: { conninfo: string; env: NodeJS.ProcessEnv; label: string; fastCheckpoint: boolean; maxRate?: string },
  stagingParent: string | undefined,
): Promise<{ captured: Map<string, Buffer>; stderr: string }> {
  const staging = await mkdtemp(path.join(stagingParent ?? os.tmpdir(), `pgharbor-staging-${context.backupId}-`));
  try {
    context.logger.info(`cluster has tablespaces: pg_basebackup writes tar files to ${staging} first`);
    const execa = await loadExeca();
    const result = await execa(tool, pgBasebackupArgs({ ...common, target: staging }), {
      env: common.env,
      stdin: 'ignore',
      reject: false,
      cancelSignal: context.signal,
      forceKillAfterDelay: 5_000,
    });
    if (result.exitCode !== 0 || result.signal) throw basebackupError(context.server.name, result.exitCode, result.signal, String(result.stderr));
    const captured = await context.sink.ingestTar(createReadStream(path.join(staging, 'base.tar'), { highWaterMark: 1024 * 1024 }), {
      capture: ['backup_label'],
    });
    const names = await readdir(staging);
    if (names.includes('backup_manifest')) captured.set('backup_manifest', await readFile(path.join(staging, 'backup_manifest')));
    for (const name of names) {
      const oid = /^(\d+)\.tar$/.exec(name)?.[1];
      if (!oid) continue;
      await context.sink.ingestTar(createReadStream(path.join(staging, name), { highWaterMark: 1024 * 1024 }), { pathPrefix: `pg_tblspc/${oid}` });
    }
    return { captured, stderr: String(result.stderr) };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Keep the last 64 KiB of a stream: enough for pg_basebackup's messages, bounded whatever it prints. */
function collectTail(stream: NodeJS.ReadableStream): { text(): string } {
  let tail = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-65536);
  });
  return { text: () => tail };
}

function manifestEndLsn(manifest: Buffer | undefined): string | undefined {
  if (!manifest) return undefined;
  try {
    const ranges = JSON.parse(manifest.toString('utf8'))['WAL-Ranges'] as { 'End-LSN': string }[];
    const end = ranges.at(-1)?.['End-LSN'];
    return end && parseLsn(end) > 0n ? end : undefined;
  } catch {
    return undefined;
  }
}
