/** CIDR ranges (IPv4 and IPv6) as a `node:net` BlockList: built once, then one `check` per address. */
import { BlockList, isIPv4 } from 'node:net';

export function blockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address, bits] = cidr.split('/') as [string, string];
    list.addSubnet(address, Number(bits), isIPv4(address) ? 'ipv4' : 'ipv6');
  }
  return list;
}

/** Whether `address` (as a socket reports it; IPv4-mapped IPv6 counts as IPv4) lies in `list`. */
export function inBlockList(list: BlockList, address: string): boolean {
  const ip = address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
  return list.check(ip, isIPv4(ip) ? 'ipv4' : 'ipv6');
}
