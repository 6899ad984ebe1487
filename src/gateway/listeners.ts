/**
 * Start-up mistakes an operator can fix, as one-line ConfigErrors: TLS files that cannot be read or served, and a
 * listen address that is taken, not permitted or not on this machine.
 */
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../config/load.ts';

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
      const reason =
        code === 'ENOENT'
          ? 'no such file'
          : code === 'EACCES'
            ? 'permission denied'
            : code === 'EISDIR'
              ? 'a directory, not a file'
              : (code ?? 'error');
      throw new ConfigError(`server.tls.${setting}: cannot read ${file} (${reason})`);
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

/**
 * A listener that cannot start for a reason the operator can fix: the port is taken, not permitted, or the address is
 * not on this machine. A ConfigError (exit code 2), in one line that names the port and what changes it.
 */
export class ListenError extends ConfigError {
  readonly port: number;
  readonly host: string;
  /** The system's reason, e.g. `EADDRINUSE` (not `code`: callers that wrap raw listen errors by code pass this on). */
  readonly reason: string;
  constructor(message: string, port: number, host: string, reason: string) {
    super(message);
    this.port = port;
    this.host = host;
    this.reason = reason;
  }
}

/** The listen error codes an operator can fix, and what they mean. */
const LISTEN_REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)',
  EADDRNOTAVAIL: 'address not available on this machine',
  ENOTFOUND: 'no such host name or address',
  EAI_AGAIN: 'no such host name or address',
  EAI_FAIL: 'no such host name or address',
};

/**
 * The ListenError for `error` (undefined when the operator cannot fix it). A port in use reads "127.0.0.1:8080
 * (API traffic) is already in use: stop what holds it, or choose another port with --port N", where
 * `change` names the flag or variable; other causes "cannot listen for API traffic on HOST:PORT: <reason>".
 */
export function explainListenError(
  error: unknown,
  what: string,
  port: number,
  host: string,
  change?: string,
): ListenError | undefined {
  const code =
    (error as NodeJS.ErrnoException | undefined)?.code ??
    // gRPC's bindAsync reports the cause only in its message.
    /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(String((error as Error | undefined)?.message))?.[1];
  const reason = code ? LISTEN_REASONS[code] : undefined;
  if (!code || !reason) return undefined;
  if (code === 'EADDRINUSE')
    return new ListenError(
      `${host.includes(':') ? `[${host}]` : host}:${port} (${what}) is already in use: stop what holds it${change ? `, or choose another port with ${change}` : ''}`,
      port,
      host,
      code,
    );
  const fix = code === 'EACCES' && change ? `; choose a port from 1024 up with ${change}` : '';
  return new ListenError(`cannot listen for ${what} on ${host}:${port}: ${reason}${fix}`, port, host, code);
}

/** A listen failure the operator can fix (port taken, no permission, no such address) is a ListenError. */
export async function listenOrExplain(
  what: string,
  fn: (port: number, host: string) => Promise<AddressInfo>,
  port: number,
  host: string,
  change?: string,
): Promise<AddressInfo> {
  try {
    return await fn(port, host);
  } catch (error) {
    throw explainListenError(error, what, port, host, change) ?? error;
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
