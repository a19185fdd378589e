import net from 'node:net';

/**
 * Ask the kernel for a free loopback port. Inherently racy (someone may grab it before postgres
 * binds), so callers retry when postgres reports the address in use.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
