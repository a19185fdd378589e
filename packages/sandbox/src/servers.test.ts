import { existsSync } from 'node:fs';
import net from 'node:net';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { startS3Server } from './s3-server.js';
import { startSshd } from './sshd.js';

const answers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

describe('sandbox servers', () => {
  it('startSshd: a private sshd that accepts the client key, checked against its known_hosts line, and cleans up', async () => {
    const sshd = await startSshd();
    try {
      const ssh = await execa('ssh', [
        '-i', sshd.clientKeyFile, '-p', String(sshd.port),
        '-o', `UserKnownHostsFile=${sshd.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
        `${sshd.user}@127.0.0.1`, 'echo connected',
      ]);
      expect(ssh.stdout).toBe('connected');
      const wrong = await execa('ssh', [
        '-i', sshd.clientKeyFile, '-p', String(sshd.port),
        '-o', `UserKnownHostsFile=${sshd.wrongKnownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
        `${sshd.user}@127.0.0.1`, 'true',
      ], { reject: false });
      expect(wrong.exitCode).not.toBe(0);
      expect(wrong.stderr).toMatch(/HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    } finally {
      await sshd.destroy();
    }
    expect(await answers(sshd.port)).toBe(false);
    expect(existsSync(sshd.dir)).toBe(false);
  });

  it('startS3Server: answers S3 on a free port, stops and starts on the same port, and cleans up', async () => {
    const s3 = await startS3Server({ buckets: ['b'] });
    const port = Number(new URL(s3.endpoint).port);
    try {
      expect(await answers(port)).toBe(true);
      await s3.stop();
      expect(s3.isRunning()).toBe(false);
      expect(await answers(port)).toBe(false);
      await s3.start();
      expect(await answers(port)).toBe(true);
    } finally {
      await s3.destroy();
    }
    expect(await answers(port)).toBe(false);
    expect(existsSync(s3.directory)).toBe(false);
  });
});
