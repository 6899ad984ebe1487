/**
 * The egress policy: which addresses upstream connections may reach. It is enforced when a connection is made,
 * not when a configuration is read: a host name is resolved by the policy's own `lookup`, which checks every
 * address it gets before the socket may use one, so a name that resolves elsewhere later (DNS rebinding) cannot
 * get around it. IP-literal hosts skip `lookup` in `net.connect`, so the connector checks them itself, and
 * compilation checks them too (`literalRefusal`) so that their requests are refused without touching a pool.
 */
import { blockList } from '../../shared/block-list.ts';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, isIPv4, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Agent, buildConnector } from 'undici';

/** `any`: every address (but what `denyLinkLocal` and `localPorts` say); `public`: public addresses only. */
export type EgressMode = 'any' | 'public';

export interface EgressPolicyOptions {
  mode: EgressMode;
  /** Refuse link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata services live there) in mode `any` too. */
  denyLinkLocal?: boolean;
  /**
   * Ports never reached on this machine's own addresses (loopback, the unspecified address, every interface's
   * address): the control plane's listeners. Read at every connection attempt, so the owner may add ports it binds
   * after the policy was made.
   */
  localPorts?: ReadonlySet<number>;
}

/** A connection the egress policy refused; `code` is the error code the gateway answers with. */
export class EgressDeniedError extends Error {
  readonly code = 'GH_ERR_UPSTREAM_EGRESS_DENIED';
  /** The refused address (a resolved one when the upstream host is a name). */
  readonly address: string;
  readonly port: number;

  constructor(host: string, address: string, port: number, reason: string) {
    super(`the egress policy refuses ${host === address ? address : `${host} (${address})`} port ${port}: ${reason}`);
    this.name = 'EgressDeniedError';
    this.address = address;
    this.port = port;
  }
}

const LINK_LOCAL = ['169.254.0.0/16', 'fe80::/10'];

/** Everything that is not a public unicast address: special-purpose registries of RFC 6890 and successors. */
const NON_PUBLIC = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  '100::/64',
  '2001:db8::/32',
  'fc00::/7',
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
];

/** Addresses that reach this machine whatever its interfaces: loopback and the unspecified address. */
const LOCAL = ['0.0.0.0/8', '127.0.0.0/8', '::/128', '::1/128'];

export class EgressPolicy {
  readonly mode: EgressMode;
  /** Whether the policy can refuse anything; a policy that cannot is not worth a custom connector. */
  readonly restricts: boolean;
  readonly #denied: BlockList;
  readonly #deniedReason: string;
  readonly #local = blockList(LOCAL);
  readonly #localPorts: ReadonlySet<number> | undefined;

  constructor(options: EgressPolicyOptions) {
    this.mode = options.mode;
    const publicOnly = options.mode === 'public';
    this.#denied = blockList(publicOnly ? NON_PUBLIC : options.denyLinkLocal ? LINK_LOCAL : []);
    this.#deniedReason = publicOnly ? 'not a public address' : 'a link-local address';
    this.#localPorts = options.localPorts;
    this.restricts = publicOnly || options.denyLinkLocal === true || options.localPorts !== undefined;
  }

  /** Why a connection to `address` (an IP address) and `port` is refused, or undefined when it is allowed. */
  check(address: string, port: number): string | undefined {
    const ip = address.replace(/%.*$/, ''); // a zone id (fe80::1%eth0) is not part of the address
    const family = isIPv4(ip) ? 'ipv4' : 'ipv6';
    // IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match the IPv4 rules: BlockList checks them both ways.
    const embedded = family === 'ipv6' ? nat64Embedded(ip) : undefined;
    if (this.#denied.check(ip, family) || (embedded !== undefined && this.#denied.check(embedded, 'ipv4')))
      return this.#deniedReason;
    if (this.#localPorts?.has(port) && (this.#local.check(ip, family) || isOwnAddress(ip)))
      return "one of this machine's own addresses, on a port of the control plane";
    return undefined;
  }

  /**
   * The refusal of an upstream URL whose host is an IP literal the policy refuses; undefined when it is allowed,
   * and for host names (checked when they are resolved).
   */
  literalRefusal(url: URL): EgressDeniedError | undefined {
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    if (isIP(host) === 0) return undefined;
    const port = portOf(url);
    const reason = this.check(host, port);
    return reason === undefined ? undefined : new EgressDeniedError(host, host, port, reason);
  }

  /** A `lookup` for `net.connect` that fails with `EgressDeniedError` unless every resolved address is allowed. */
  lookup(port: number): LookupFunction {
    return (hostname, options, callback) => {
      dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
        if (error) return callback(error, '');
        for (const a of addresses) {
          const reason = this.check(a.address, port);
          if (reason !== undefined) return callback(new EgressDeniedError(hostname, a.address, port, reason), '');
        }
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      });
    };
  }

  /** An undici connector for one upstream origin that enforces the policy on every connection it makes. */
  connector(origin: string, timeout: number): buildConnector.connector {
    const url = new URL(origin);
    const port = portOf(url);
    const connect = buildConnector({ timeout, lookup: this.lookup(port) });
    return (options, callback) => {
      // net.connect does not look up an IP literal: check it here.
      if (isIP(options.hostname) !== 0) {
        const reason = this.check(options.hostname, port);
        if (reason !== undefined)
          return callback(new EgressDeniedError(options.hostname, options.hostname, port, reason), null);
      }
      connect(options, callback);
    };
  }
}

/**
 * An undici dispatcher for connections to any origin that enforces `policy` on each (the control plane's alert
 * webhooks: their URLs are set through the admin API, so they obey the egress policy the cloud gateway's upstreams
 * obey). Each connection is checked when it is made (a kept-alive one was checked then).
 */
export function egressAgent(policy: EgressPolicy, connectTimeoutMs = 5_000): Agent {
  return new Agent({
    connect(options, callback) {
      const port = options.port === '' ? (options.protocol === 'https:' ? 443 : 80) : Number(options.port);
      if (isIP(options.hostname) !== 0) {
        const reason = policy.check(options.hostname, port);
        if (reason !== undefined)
          return callback(new EgressDeniedError(options.hostname, options.hostname, port, reason), null);
      }
      buildConnector({ timeout: connectTimeoutMs, lookup: policy.lookup(port) })(options, callback);
    },
  });
}

function portOf(url: URL): number {
  return url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
}

const NAT64 = blockList(['64:ff9b::/96']);

/**
 * The IPv4 address inside a NAT64 address (64:ff9b::a.b.c.d, RFC 6052), which a NAT64 gateway connects to; so
 * `64:ff9b::a9fe:a9fe` is 169.254.169.254 in disguise.
 */
function nat64Embedded(ip: string): string | undefined {
  if (!NAT64.check(ip, 'ipv6')) return undefined;
  const groups = expandIpv6(ip);
  const high = groups[6]!;
  const low = groups[7]!;
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/** The eight 16-bit groups of an IPv6 address (dotted IPv4 tail included). */
function expandIpv6(ip: string): number[] {
  let text = ip;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string | undefined) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const left = parse(head);
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** Whether `ip` is an address of one of this machine's interfaces (read at each call: interfaces come and go). */
function isOwnAddress(ip: string): boolean {
  const list = new BlockList();
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? [])
      list.addAddress(a.address.replace(/%.*$/, ''), a.family === 'IPv4' ? 'ipv4' : 'ipv6');
  }
  return list.check(ip, isIPv4(ip) ? 'ipv4' : 'ipv6');
}
