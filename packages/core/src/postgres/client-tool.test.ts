import { describe, expect, it } from 'vitest';
import { installHint, parseToolMajor, toolServes, type ClientTool } from './client-tool.js';

describe('client programs per major', () => {
  it.each([
    ['pg_receivewal (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)', 15],
    ['pg_verifybackup (PostgreSQL) 17.2', 17],
    ['pg_receivewal (PostgreSQL) 18beta1', 18],
    ['pg_receivewal 15.1', undefined],
    ['', undefined],
  ])('parseToolMajor(%j) = %s', (output, major) => {
    expect(parseToolMajor(output)).toBe(major);
  });

  // [tool, its major, server or backup major, parses WAL, serves]
  const cases: [ClientTool, number, number, boolean, boolean][] = [
    ['pg_receivewal', 15, 13, true, true], // older servers: fine (tested on 13 and 14)
    ['pg_receivewal', 15, 15, true, true],
    ['pg_receivewal', 15, 16, true, false], // "incompatible server version"
    ['pg_receivewal', 18, 17, true, true],
    ['pg_verifybackup', 15, 15, true, true],
    ['pg_verifybackup', 15, 14, true, false], // its pg_waldump reads only 15's WAL
    ['pg_verifybackup', 17, 15, true, false],
    ['pg_verifybackup', 17, 15, false, true], // --no-parse-wal: the manifest alone
    ['pg_verifybackup', 15, 18, false, false], // 18's manifest version 2
  ];
  it.each(cases)('%s %i for PostgreSQL %i (parses WAL: %s): %s', (tool, toolMajor, serverMajor, parsesWal, serves) => {
    expect(toolServes(tool, toolMajor, serverMajor, parsesWal)).toBe(serves);
  });

  it('names the package that holds the program', () => {
    expect(installHint('pg_receivewal', 17, 'pga')).toContain('apt install postgresql-client-17');
    expect(installHint('pg_receivewal', 17, 'pga')).toContain('pg_bin_dir in servers.pga to a directory holding pg_receivewal 17 or newer');
    // Debian ships pg_waldump, which pg_verifybackup runs, with the server.
    expect(installHint('pg_verifybackup', 16, 'pga')).toContain('apt install postgresql-16,');
  });
});
