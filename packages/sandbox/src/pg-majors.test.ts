import { afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { availableMajors, pgBinForMajor, SUPPORTED_MAJORS } from './pg-majors.js';
import { pgClientBinDir, pgVersion } from './pg-bin.js';
import { createCluster } from './cluster.js';

describe('PostgreSQL majors', () => {
  afterEach(() => {
    delete process.env.PGHARBOR_PG17_BIN;
  });

  it('has a server of every supported major (Debian 15, the npm packages for the others)', async () => {
    expect(availableMajors()).toEqual([...SUPPORTED_MAJORS]);
    expect(pgBinForMajor(15)).toBe('/usr/lib/postgresql/15/bin');
    for (const major of SUPPORTED_MAJORS) {
      const bin = pgBinForMajor(major);
      expect(existsSync(path.join(bin, 'initdb'))).toBe(true);
      // Run as the OS user clusters run as: the install path must be reachable by it.
      expect((await pgVersion(bin)).major).toBe(major);
    }
  });

  it('takes pgbench and psql from Debian 15 for a server that ships none', () => {
    expect(pgClientBinDir(pgBinForMajor(17))).toBe('/usr/lib/postgresql/15/bin');
    expect(pgClientBinDir('/usr/lib/postgresql/15/bin')).toBe('/usr/lib/postgresql/15/bin');
  });

  it('refuses an unsupported major and a PGHARBOR_PG<major>_BIN without a server, saying why', () => {
    expect(() => pgBinForMajor(12)).toThrow(/PostgreSQL 12 is not a major pgharbor supports/);
    process.env.PGHARBOR_PG17_BIN = '/nonexistent';
    expect(() => pgBinForMajor(17)).toThrow(/PGHARBOR_PG17_BIN=\/nonexistent holds no postgres program/);
  });

  it('starts a cluster of another major; a setting that major lacks fails the start, naming it', async () => {
    const cluster = await createCluster({ pgBin: pgBinForMajor(17), settings: { summarize_wal: true } });
    try {
      expect(cluster.major).toBe(17);
      expect(await cluster.query('SHOW summarize_wal')).toEqual([{ summarize_wal: 'on' }]);
    } finally {
      await cluster.destroy();
    }
    // summarize_wal came with 17: 13's server refuses to start, and the error shows its log line.
    await expect(createCluster({ pgBin: pgBinForMajor(13), settings: { summarize_wal: true } })).rejects.toThrow(/unrecognized configuration parameter "summarize_wal"/);
  });
});
