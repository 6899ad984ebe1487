/**
 * `server.publicHosts`: the hosts a gateway answers for. An entry is a host name or IP literal (any port), the
 * same with a port (`api.example.com:8443`: that port only), or `*.example.com` (any subdomain, any port; not
 * `example.com` itself). Compared case-insensitively with the request's Host header.
 */
export class HostList {
  readonly #names = new Set<string>();
  readonly #withPort = new Set<string>();
  readonly #suffixes: string[] = [];

  constructor(entries: readonly string[]) {
    for (const raw of entries) {
      const entry = raw.toLowerCase();
      if (entry.startsWith('*.')) this.#suffixes.push(entry.slice(1));
      else if (splitHost(entry).port !== undefined) this.#withPort.add(entry);
      else this.#names.add(entry);
    }
  }

  /** Whether a Host header value (already checked to be a host with an optional port) is on the list. */
  has(host: string): boolean {
    const lower = host.toLowerCase();
    if (this.#withPort.has(lower)) return true;
    const { name } = splitHost(lower);
    if (this.#names.has(name)) return true;
    for (const suffix of this.#suffixes) if (name.length > suffix.length && name.endsWith(suffix)) return true;
    return false;
  }
}

/** `host[:port]` and `[v6][:port]` into the name and the port, if any. */
export function splitHost(host: string): { name: string; port: string | undefined } {
  const close = host.startsWith('[') ? host.indexOf(']') : -1;
  const colon = host.indexOf(':', close + 1);
  return colon === -1 ? { name: host, port: undefined } : { name: host.slice(0, colon), port: host.slice(colon + 1) };
}
