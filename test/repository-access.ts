import { Harbor, silentLogger, type BackupManifest, type Repository } from '@pgharbor/core';

/**
 * Read and write a repository through pgharbor's own Repository, as the CLI
 * does (manifests sealed in an encrypted repository, checksummed in a plain
 * one): what a test needs to look at a manifest or to craft a hostile one
 * that pgharbor itself could have written.
 */
export async function withRepository<T>(configFile: string, work: (repository: Repository) => Promise<T>, repo = 1, server = 'pg'): Promise<T> {
  const harbor = await Harbor.load({ configFile, logger: silentLogger });
  try {
    return await work(await harbor.server(server).repository(repo));
  } finally {
    await harbor.close();
  }
}

/** A backup's manifest, authenticated as every command reads it. */
export async function readManifest(configFile: string, id: string, repo = 1): Promise<BackupManifest> {
  const manifest = await withRepository(configFile, (repository) => repository.readManifest(id), repo);
  if (!manifest) throw new Error(`no manifest for backup ${id}`);
  return manifest;
}
