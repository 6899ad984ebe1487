/**
 * Request ids: 20 characters, a random prefix drawn once per process (48 bits, hex) and a counter (base 36,
 * 8 digits, longer after 2.8 × 10¹² requests). Unique per process by construction and, with the prefix, across
 * the instances of a deployment; cheaper than a random UUID per request and shorter on every header and log line
 * that carries it. An id names a request, it grants nothing, so it need not be unpredictable.
 */
import { randomBytes } from 'node:crypto';

const PREFIX = randomBytes(6).toString('hex');
const PAD = '00000000';
let sequence = 0;

export function nextRequestId(): string {
  const n = (sequence++).toString(36);
  return n.length >= PAD.length ? PREFIX + n : PREFIX + PAD.slice(n.length) + n;
}
