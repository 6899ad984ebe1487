/** IP allow-list: a client with allowed IP ranges may call only from inside them (IPv4 and IPv6 CIDR). */
import { isIPv4 } from 'node:net';
import { refusal } from '../../shared/errors.ts';
import type { Policy, RequestContext } from './policy.ts';

const NOT_ALLOWED = refusal('GH_ERR_AUTH_IP_NOT_ALLOWED');

export function ipAllow(): Policy {
  return function ipAllowPolicy(ctx: RequestContext) {
    const ranges = ctx.principal?.allowedIps;
    if (ranges === undefined) return undefined;
    return ranges.check(ctx.clientIp, isIPv4(ctx.clientIp) ? 'ipv4' : 'ipv6') ? undefined : NOT_ALLOWED;
  };
}
