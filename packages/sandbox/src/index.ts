export { createCluster, startExistingCluster } from './cluster.js';
export type { SandboxCluster, SandboxClusterOptions } from './cluster.js';
export type { Settings } from './conf.js';
export { freePort } from './free-port.js';
export { pgBinDir } from './pg-bin.js';
export { chownToPgUser, pgOsUser } from './pg-os-user.js';
export type { OsUser } from './pg-os-user.js';
export { SANDBOX_PASSWORD } from './template.js';
