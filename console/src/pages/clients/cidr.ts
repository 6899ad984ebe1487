/** CIDR ranges as the admin API accepts them (zod's cidrv4/cidrv6): an address and a prefix length. */
export function cidrProblem(text: string): string | undefined {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return `“${text}” is not a CIDR range: write an address and a prefix, e.g. 203.0.113.0/24 or 2001:db8::/32`;
  const [, address, prefixText] = m;
  const prefix = Number(prefixText);
  if (/^\d+\.\d+\.\d+\.\d+$/.test(address!)) {
    if (address!.split('.').some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith('0'))))
      return `“${text}”: each part of an IPv4 address is 0–255`;
    if (prefix > 32) return `“${text}”: an IPv4 prefix is 0–32`;
    return undefined;
  }
  if (address!.includes(':')) {
    try {
      // The URL parser validates IPv6 literals exactly as browsers read them.
      new URL(`http://[${address}]/`);
    } catch {
      return `“${text}” is not a valid IPv6 address`;
    }
    if (prefix > 128) return `“${text}”: an IPv6 prefix is 0–128`;
    return undefined;
  }
  return `“${text}” is not an IPv4 or IPv6 range`;
}

export function splitRanges(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}
