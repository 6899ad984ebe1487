/**
 * IP allow-list: a client with allowed IP ranges may call only from inside them (IPv4 and IPv6 CIDR); a derived
 * credential with its own (narrower) ranges, only from inside those too.
 */
import { isIPv4 } from 'node:net';
import { refusal } from '../../shared/errors.ts';
import type { DerivedVerifier } from '../tokens/token-endpoint.ts';
import type { Policy, RequestContext } from './policy.ts';

const NOT_ALLOWED = refusal('GH_ERR_AUTH_IP_NOT_ALLOWED');

export function ipAllow(derived?: DerivedVerifier): Policy {
  return function ipAllowPolicy(ctx: RequestContext) {
    const ranges = ctx.principal?.allowedIps;
    const own = ctx.derived === undefined ? undefined : derived?.ranges(ctx.derived);
    if (ranges === undefined && own === undefined) return undefined;
    const family = isIPv4(ctx.clientIp) ? 'ipv4' : 'ipv6';
    if (ranges !== undefined && !ranges.check(ctx.clientIp, family)) return NOT_ALLOWED;
    return own === undefined || own.check(ctx.clientIp, family) ? undefined : NOT_ALLOWED;
  };
}
