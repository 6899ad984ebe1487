/**
 * Alert rules and webhook destinations of a workspace: which alerts go where, and their signed delivery.
 *
 * A rule matches an alert kind, optionally of one gateway (and, for `auth_failure_spike`, at least its threshold
 * of failures); when a matching alert is raised, and again when it is resolved, one delivery per destination of
 * every enabled matching rule is queued in the store in the same transaction (`routeAlert`). The queue is drained
 * beside evaluation (`createDestinationDelivery`): a failed attempt — a network error, a timeout, a status other
 * than 2xx — is recorded on the delivery (status and error) and retried with exponential backoff up to
 * `maxAttempts`. Delivery is at least once: a receiver deduplicates on `X-Gatehouse-Delivery`.
 *
 * Every POST is signed: `X-Gatehouse-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` under the
 * destination's secret, with `X-Gatehouse-Timestamp` (Unix seconds), so that a receiver can check that the body
 * came from this control plane and is recent (see docs/telemetry.md).
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { fetch, type Dispatcher } from 'undici';
import { EgressDeniedError } from '../../gateway/index.ts';
import { nowIso } from '../ids.ts';
import type {
  AlertDeliveryRecord,
  AlertDestinationRecord,
  AlertRecord,
  AlertRuleRecord,
  Store,
  StoreOps,
} from '../store/store.ts';
import { createDeliveryLoop, retryDelayMs, type DeliveryLoop } from './delivery-loop.ts';
import { payloadOf } from './webhook.ts';

/** A fresh signing secret: `whsec_` and 32 random bytes, base64url. */
export function newDestinationSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

/** The headers that sign `body` under `secret` at `timestampSeconds`. */
export function signatureHeaders(secret: string, body: string, timestampSeconds: number): Record<string, string> {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.${body}`).digest('hex');
  return { 'x-gatehouse-timestamp': String(timestampSeconds), 'x-gatehouse-signature': `sha256=${mac}` };
}

/** What one POST to a destination came to. */
export interface PostOutcome {
  ok: boolean;
  /** The HTTP status, when the receiver answered. */
  status?: number;
  /** Why it failed: the status, or the network error (never the secret). */
  error?: string;
  durationMs: number;
}

/** POSTs `body` to the destination, signed; never rejects. Redirects are not followed (a redirect is a failure). */
export async function postSigned(
  destination: Pick<AlertDestinationRecord, 'url' | 'secret'>,
  body: string,
  options: {
    deliveryId: string;
    now: number;
    timeoutMs: number;
    signal?: AbortSignal;
    /** Where connections are made: the control plane's egress policy (`egressAgent`); default undici's global one. */
    dispatcher?: Dispatcher;
  },
): Promise<PostOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    const res = await fetch(destination.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'gatehouse-alerts',
        'x-gatehouse-delivery': options.deliveryId,
        ...signatureHeaders(destination.secret, body, Math.floor(options.now / 1000)),
      },
      body,
      signal: options.signal
        ? AbortSignal.any([AbortSignal.timeout(options.timeoutMs), options.signal])
        : AbortSignal.timeout(options.timeoutMs),
      redirect: 'manual',
      ...(options.dispatcher !== undefined && { dispatcher: options.dispatcher }),
    });
    await res.body?.cancel();
    if (res.ok) return { ok: true, status: res.status, durationMs: elapsed() };
    return {
      ok: false,
      status: res.status,
      error: `the receiver answered HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${res.status >= 300 && res.status < 400 ? ' (redirects are not followed: use the final URL)' : ''}`,
      durationMs: elapsed(),
    };
  } catch (err) {
    return { ok: false, error: networkError(err, options.timeoutMs), durationMs: elapsed() };
  }
}

function networkError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  if (e.name === 'AbortError') return 'aborted';
  if (e.cause instanceof EgressDeniedError)
    return `not attempted: ${e.cause.message} (the control plane's egress policy, --cloud-egress, applies to alert destinations too)`;
  const cause = e.cause?.code ?? e.cause?.message;
  return cause ? `could not reach the receiver: ${cause}` : `could not reach the receiver: ${e.message ?? String(err)}`;
}

/** Whether an enabled rule matches the alert (its kind, gateway and, for auth-failure spikes, threshold). */
export function ruleMatches(rule: AlertRuleRecord, alert: AlertRecord): boolean {
  if (!rule.enabled || rule.kind !== alert.kind) return false;
  if (rule.gatewayId !== undefined && rule.gatewayId !== alert.gatewayId) return false;
  if (rule.threshold !== undefined) {
    const failures = alert.details?.['failures'];
    if (typeof failures === 'number' && failures < rule.threshold) return false;
  }
  return true;
}

/** Queues one delivery of the alert's current state per destination of every matching rule (inside `tx`). */
export async function routeAlert(tx: StoreOps, alert: AlertRecord, at: string): Promise<number> {
  const rules = (await tx.listAlertRules(alert.workspaceId)).filter((r) => ruleMatches(r, alert));
  const ids = new Set(rules.flatMap((r) => r.destinationIds));
  if (ids.size === 0) return 0;
  const known = new Set((await tx.listAlertDestinations(alert.workspaceId)).map((d) => d.id));
  const state = alert.resolvedAt === undefined ? 'raised' : 'resolved';
  const payload = JSON.stringify({ ...payloadOf(alert), state });
  let queued = 0;
  for (const destinationId of ids) {
    if (!known.has(destinationId)) continue;
    await tx.insertAlertDelivery({
      id: `dlv_${randomUUID().replaceAll('-', '')}`,
      workspaceId: alert.workspaceId,
      alertId: alert.id,
      destinationId,
      state,
      payload,
      attempts: 0,
      nextAttemptAt: at,
      createdAt: at,
    });
    queued++;
  }
  return queued;
}

export interface DestinationDeliveryOptions {
  store: Store;
  logger: Logger;
  now: () => number;
  /** Per attempt. Default 5 s. */
  timeoutMs?: number;
  /** Default 10. */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt up to 5 minutes. Default 1 s. */
  retryBaseMs?: number;
  /** Where connections are made (the egress policy); default undici's global dispatcher. */
  dispatcher?: Dispatcher;
}

export type DestinationDelivery = DeliveryLoop;

const BATCH = 100;

export function createDestinationDelivery(options: DestinationDeliveryOptions): DestinationDelivery {
  const { store, logger, now } = options;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const maxAttempts = options.maxAttempts ?? 10;
  const retryBaseMs = options.retryBaseMs ?? 1_000;

  async function attempt(d: AlertDeliveryRecord, signal: AbortSignal): Promise<void> {
    const destination = await store.getAlertDestination(d.workspaceId, { id: d.destinationId });
    if (!destination) return; // deleted meanwhile: its deliveries went with it
    const outcome = await postSigned(destination, d.payload, {
      deliveryId: d.id,
      now: now(),
      timeoutMs,
      signal,
      ...(options.dispatcher !== undefined && { dispatcher: options.dispatcher }),
    });
    if (signal.aborted) return;
    const attempts = d.attempts + 1;
    const delay = retryDelayMs(retryBaseMs, attempts);
    const { lastError: _e, lastStatus: _s, ...rest } = d;
    await store.updateAlertDelivery({
      ...rest,
      attempts,
      ...(outcome.status !== undefined ? { lastStatus: outcome.status } : {}),
      ...(outcome.ok
        ? { deliveredAt: nowIso(now()) }
        : { lastError: outcome.error ?? 'failed', nextAttemptAt: nowIso(now() + delay) }),
    });
    const fields = { delivery: d.id, alert: d.alertId, destination: d.destinationId, attempt: attempts };
    if (!outcome.ok) {
      logger.warn({ ...fields, status: outcome.status, err: outcome.error }, 'an alert destination refused an alert');
      if (attempts >= maxAttempts) logger.error(fields, 'gave up delivering an alert to a destination');
    }
  }

  async function run(signal: AbortSignal): Promise<void> {
    for (const d of await store.listDueAlertDeliveries(nowIso(now()), maxAttempts, BATCH)) {
      if (signal.aborted) return;
      await attempt(d, signal);
    }
  }

  return createDeliveryLoop(run, (err) => logger.error({ err }, 'delivering alerts to destinations failed'));
}
