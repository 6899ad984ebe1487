/**
 * The edge gateway's reconnect backoff, shared by the sync channel (`sync-client.ts`) and re-enrollment
 * (`certificate-renewal.ts`); a module of its own so that start-up does not load gRPC to read two numbers.
 */
/**
 * When to dial again: attempt n (failures in a row) waits a random time up to min(initialMs·2^n, cap), where the
 * cap is `shortOutageCapMs` while the gateway has been without a connection for at most `shortOutageMs`, and a
 * tenth of the time without one (at least `shortOutageCapMs`, at most `maxMs`) after that.
 */
export interface ReconnectBackoff {
  initialMs: number;
  maxMs: number;
  /** Default 1 s. */
  shortOutageCapMs?: number;
  /** Default 60 s. */
  shortOutageMs?: number;
}

export const DEFAULT_RECONNECT: Required<ReconnectBackoff> = {
  initialMs: 250,
  maxMs: 30_000,
  shortOutageCapMs: 1000,
  shortOutageMs: 60_000,
};

/** The longest delay before attempt `attempt` (failures in a row) after `outageMs` without a connection. */
export function reconnectCeiling(backoff: ReconnectBackoff, attempt: number, outageMs: number): number {
  const b = { ...DEFAULT_RECONNECT, ...backoff };
  const cap = outageMs <= b.shortOutageMs ? b.shortOutageCapMs : Math.max(b.shortOutageCapMs, outageMs / 10);
  return Math.min(b.maxMs, cap, b.initialMs * 2 ** Math.min(attempt, 30));
}
