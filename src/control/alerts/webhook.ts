/**
 * Webhook delivery of alerts: every alert is POSTed as JSON when it is raised and again when it is resolved, to one
 * configured URL. Delivery runs beside evaluation, never inside it: an unreachable receiver delays nothing else.
 *
 * The store is the queue: an alert whose `deliveredAt` is unset is due (resolving an alert clears it, so the
 * resolution goes out too). A failed attempt — a network error, a timeout, a status other than 2xx — is counted in
 * `deliveryAttempts` and retried with exponential backoff (1 s, 2 s, 4 s, … at most 5 min, with jitter) up to
 * `maxAttempts`. Delivery is at least once: a receiver deduplicates on `id` + `resolvedAt`.
 */
import type { Logger } from 'pino';
import type { AlertRecord, Store } from '../store/store.ts';
import { nowIso } from '../ids.ts';
import { createDeliveryLoop, retryDelayMs, type DeliveryLoop } from './delivery-loop.ts';

/** The JSON body a webhook receives. */
export interface AlertPayload {
  id: string;
  /** `auth_failure_spike`, `version_mismatch`, `connectivity_lost`, `rate_limit_store_degraded`. */
  kind: string;
  message: string;
  /** Workspace id. */
  workspace: string;
  /** Gateway id, `cloud`, or absent. */
  gateway?: string;
  raisedAt: string;
  /** Present once the condition is over. */
  resolvedAt?: string;
  details?: Record<string, unknown>;
}

export interface WebhookOptions {
  store: Store;
  logger: Logger;
  url: string;
  now: () => number;
  /** Per attempt. Default 5 s. */
  timeoutMs?: number;
  /** Default 10. */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt up to 5 minutes. Default 1 s. */
  retryBaseMs?: number;
}

export type WebhookDelivery = DeliveryLoop;

const BATCH = 100;

export function payloadOf(alert: AlertRecord): AlertPayload {
  return {
    id: alert.id,
    kind: alert.kind,
    message: alert.message,
    workspace: alert.workspaceId,
    ...(alert.gatewayId !== undefined ? { gateway: alert.gatewayId } : {}),
    raisedAt: alert.raisedAt,
    ...(alert.resolvedAt !== undefined ? { resolvedAt: alert.resolvedAt } : {}),
    ...(alert.details !== undefined ? { details: alert.details } : {}),
  };
}

export function createWebhookDelivery(options: WebhookOptions): WebhookDelivery {
  const { store, logger, url, now } = options;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const maxAttempts = options.maxAttempts ?? 10;
  const retryBaseMs = options.retryBaseMs ?? 1_000;
  /** Alert id + state → when the next attempt is due (in memory: after a restart every due alert is tried at once). */
  const notBefore = new Map<string, number>();

  const stateKey = (a: AlertRecord) => `${a.id}/${a.resolvedAt ?? 'open'}`;

  async function attempt(alert: AlertRecord, signal: AbortSignal): Promise<boolean> {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'gatehouse-alerts' },
        body: JSON.stringify(payloadOf(alert)),
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), signal]),
        redirect: 'error',
      });
      await res.body?.cancel();
      if (res.ok) return true;
      logger.warn(
        { alert: alert.id, status: res.status, attempt: alert.deliveryAttempts + 1 },
        'the alert webhook refused an alert',
      );
    } catch (err) {
      if (!signal.aborted)
        logger.warn(
          { alert: alert.id, err: (err as Error).message, attempt: alert.deliveryAttempts + 1 },
          'the alert webhook is unreachable',
        );
    }
    return false;
  }

  /** Records the outcome on the alert as it is now: a resolution that happened meanwhile is not overwritten. */
  async function record(sent: AlertRecord, delivered: boolean): Promise<void> {
    await store.transaction(async (tx) => {
      let current: AlertRecord | undefined;
      if (sent.resolvedAt === undefined) {
        current = await tx.getOpenAlert(sent.workspaceId, sent.key);
        if (current?.id !== sent.id) return; // resolved meanwhile: its resolution is due on its own
      } else {
        current = sent; // a resolved alert changes no more, except by delivery
      }
      await tx.updateAlert({
        ...current,
        deliveryAttempts: current.deliveryAttempts + 1,
        ...(delivered ? { deliveredAt: nowIso(now()) } : {}),
      });
    });
  }

  async function run(signal: AbortSignal): Promise<void> {
    const due = (await store.listUndeliveredAlerts(BATCH)).filter(
      (a) => a.deliveryAttempts < maxAttempts && (notBefore.get(stateKey(a)) ?? 0) <= now(),
    );
    for (const alert of due) {
      if (signal.aborted) return;
      const delivered = await attempt(alert, signal);
      if (signal.aborted) return;
      const key = stateKey(alert);
      if (delivered) {
        notBefore.delete(key);
      } else {
        const attempts = alert.deliveryAttempts + 1;
        if (attempts >= maxAttempts)
          logger.error({ alert: alert.id, attempts }, 'gave up delivering an alert to the webhook');
        notBefore.set(key, now() + retryDelayMs(retryBaseMs, attempts));
      }
      await record(alert, delivered);
    }
  }

  return createDeliveryLoop(run, (err) => logger.error({ err }, 'delivering alerts failed'));
}
