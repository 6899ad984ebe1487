/**
 * Start-up mistakes an operator can fix, as one-line ConfigErrors: TLS files that cannot be read or served, and a
 * listen address that is taken, not permitted or not on this machine.
 */
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../config/load.ts';

/** What a file or listen error means, in words an operator can act on. */
const ERRNO_REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'a directory, not a file',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this machine',
  ENOTFOUND: 'no such host name or address',
  EAI_AGAIN: 'no such host name or address',
  EAI_FAIL: 'no such host name or address',
};

/**
 * Reads `server.tls`'s certificate chain and private key and checks that they are PEM that belong together, so
 * that a wrong path, an unreadable file, a swapped pair or a key that does not match stops the start with a
 * ConfigError naming the setting and the file. OpenSSL's reason is kept; the key's bytes never reach a message.
 */
export async function loadTls(certFile: string, keyFile: string): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (setting: string, file: string) => {
    try {
      return await readFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new ConfigError(
        `server.tls.${setting}: cannot read ${file} (${ERRNO_REASONS[code ?? ''] ?? code ?? 'error'})`,
      );
    }
  };
  const cert = await read('cert', certFile);
  const key = await read('key', keyFile);
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    const reason = (error as Error).message.replace(/^error:[0-9A-F]+:/, '');
    throw new ConfigError(
      `server.tls: cannot serve with the certificate ${certFile} and the key ${keyFile} (${reason})`,
    );
  }
  return { cert, key };
}

/** A listen failure the operator can fix (port taken, no permission, no such address) is a ConfigError. */
export async function listenOrExplain(
  what: string,
  fn: (port: number, host: string) => Promise<AddressInfo>,
  port: number,
  host: string,
): Promise<AddressInfo> {
  try {
    return await fn(port, host);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' || code === 'EISDIR' ? undefined : ERRNO_REASONS[code ?? ''];
    if (reason) throw new ConfigError(`cannot listen for ${what} traffic on ${host}:${port}: ${reason}`);
    throw error;
  }
}

export async function listenOn(server: Server, port: number, host: string): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}
