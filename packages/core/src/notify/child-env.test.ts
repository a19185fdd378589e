import { describe, expect, it } from 'vitest';
import { childEnv } from './child-env.js';

describe('the environment of hook scripts and command notifiers', () => {
  it('never carries libpq\'s PGPASSWORD, nor a variable the config reads a secret from', () => {
    const env = childEnv({ servers: { pga: { password: { from_env: 'PGA_PW' } } } }, { PATH: '/bin', PGPASSWORD: 'libpq-pw', PGA_PW: 'x', PGHOST: '/tmp' });
    expect(env).toEqual({ PATH: '/bin', PGHOST: '/tmp' });
  });
});
