/**
 * The identity of the cluster a repository section belongs to. Written by
 * the first backup (or archive-push) and compared on every later one, so
 * that two clusters never mix their backups and WAL ("systemid coherence").
 */
export interface ServerIdentity {
  systemIdentifier: string;
  /** server_version_num of the cluster when it was first seen, e.g. 150018. */
  pgVersion: number;
  createdAt: string;
}

/** Only the major version matters: minor upgrades keep the same data format. */
export function pgMajor(versionNum: number): number {
  return versionNum >= 100000 ? Math.floor(versionNum / 10000) : Math.floor(versionNum / 100);
}
