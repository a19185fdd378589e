import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { decodePgBackupManifest } from '../repository/manifest-codec.js';
import type { Logger } from '../log.js';
import type { ServerHandle } from '../server-handle.js';
import type { BackupManifest } from '../repository/manifest.js';
import type { Repository } from '../repository/repository.js';
import { readAll } from '../storage/storage-io.js';
import { loadExeca } from '../lazy-execa.js';
import { probeClientTool } from '../postgres/client-tool.js';
import type { ContainedTree } from '../restore/contained-tree.js';

export interface PgVerifybackupResult {
  ran: boolean;
  /** Why it did not run. */
  skipped?: string;
  /** The command's own report (stdout + stderr). */
  output?: string;
  problems: string[];
}

/**
 * PostgreSQL's own check of a backup against its backup_manifest (sizes,
 * CRC-32C checksums, no missing or extra files, WAL parseable from start
 * to end), run on the plain copy verify wrote while checking our
 * checksums. Tablespaces are plain directories under pg_tblspc/<oid> in
 * that copy, which pg_verifybackup accepts.
 */
export async function runPgVerifybackup(server: ServerHandle, repository: Repository, backup: BackupManifest, copy: ContainedTree, logger: Logger): Promise<PgVerifybackupResult> {
  const tool = server.pgTool('pg_verifybackup', backup.pgVersion);
  if (path.isAbsolute(tool) && !existsSync(tool)) return { ran: false, skipped: `${tool} is not installed`, problems: [] };
  // Another major's pg_verifybackup would report the WAL (or 18's manifest) as damaged: skip, saying what to install.
  const probe = await probeClientTool(server, 'pg_verifybackup', backup.pgVersion, backup.walIncluded);
  if (!probe.ok) return { ran: false, skipped: `${probe.detail}; ${probe.hint}`, problems: [] };
  const copyDir = copy.destination;
  for (const file of backup.files) if (file.type === 'directory') await copy.makeDirectory(file.path);
  const stored = await readAll(await repository.storage.get(repository.pgBackupManifestKey(backup.id)));
  await fs.writeFile(path.join(copyDir, 'backup_manifest'), await decodePgBackupManifest(repository, backup.id, stored), { mode: 0o600 });
  // Without the WAL in the backup there is nothing for pg_waldump to parse here (verify --wal checks the archive).
  const args = [...(backup.walIncluded ? [] : ['--no-parse-wal']), copyDir];
  logger.debug(`running ${tool} ${args.join(' ')}`);
  const execa = await loadExeca();
  const result = await execa(tool, args, { reject: false, all: true, env: { ...process.env, LC_ALL: 'C' } });
  if ((result as { failed?: boolean; exitCode?: number }).exitCode === undefined && result.failed) {
    return { ran: false, skipped: `${tool} could not run: ${result.shortMessage}`, problems: [] };
  }
  const output = String(result.all ?? '').replaceAll(copyDir, '<copy>');
  const problems = result.exitCode === 0 ? [] : output.split('\n').filter((line) => /error|mismatch|missing|not present|not in the manifest|checksum/i.test(line)).map((line) => `pg_verifybackup: ${line.replace(/^pg_verifybackup: (error: )?/, '')}`);
  if (result.exitCode !== 0 && problems.length === 0) problems.push(`pg_verifybackup exited with status ${result.exitCode}: ${output.trim().split('\n').slice(-3).join(' / ')}`);
  return { ran: true, output: output.trim(), problems };
}
