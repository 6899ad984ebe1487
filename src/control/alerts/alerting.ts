/**
 * Alerts: conditions of a workspace's gateways an operator should hear about, raised and resolved by evaluating
 * the store, listed in the admin API and POSTed to a webhook (webhook.ts).
 *
 * - `auth_failure_spike` — a gateway (or the cloud gateway, `cloud`) reported at least `authFailureThreshold`
 *   authentication failures (security events of kind `auth_failure`) in the last minute. Resolved once the last
 *   minute holds fewer than half as many, so that a rate hovering at the threshold does not flap.
 * - `version_mismatch` — an online instance of an edge gateway runs a version outside the supported skew
 *   (`isSupportedVersion`: same major, at most `supportedMinorsBehind` minors behind the control plane, never
 *   ahead). One alert per gateway; resolved when every online instance is supported again.
 * - `rate_limit_store_degraded` — an instance of an edge gateway reported, within the last `storeDegradedWindowMs`,
 *   that its shared rate-limit store (Redis) is degraded: its limits hold per instance only, or refuse where they
 *   fail closed. Instances report it when it happens and every 15 s while it lasts (security events of kind
 *   `rate_limit_store_degraded`), so the alert resolves once no instance has reported it for the window.
 * - `connectivity_lost` — an edge gateway that had instances has not heard from any for `offlineAfterMs` (the store
 *   keeps `lastSeenAt` fresh with heartbeats, so this must exceed the heartbeat interval). Resolved when an
 *   instance is connected and heard from again. Open alerts of a deleted gateway are resolved.
 *
 * Alert rules of the workspace (destinations.ts) route each raised and resolved alert to webhook destinations; the
 * lowest threshold of the enabled `auth_failure_spike` rules that set one replaces `authFailureThreshold` there.
 *
 * There is one open alert per `key` (`<kind>:<gateway id>`); raising and resolving run in a store transaction, so
 * several control-plane replicas evaluating at once still raise it once. `evaluate(workspace)` runs after every
 * telemetry batch (calls for one workspace coalesce); a timer evaluates every workspace every `intervalMs`, which is
 * what notices silence: a gateway that stopped reporting, a spike that ended.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { SecurityEventKind } from '../../config/telemetry.ts';
import { nowIso } from '../ids.ts';
import type { AlertRecord, GatewayInstanceRecord, GatewayRecord, Store } from '../store/store.ts';
import { CLOUD_GATEWAY_ID } from '../telemetry/ingest.ts';
import { isSupportedVersion } from './version-skew.ts';
import { createDestinationDelivery, routeAlert } from './destinations.ts';
import { createWebhookDelivery, type WebhookDelivery } from './webhook.ts';

export const AlertKind = {
  authFailureSpike: 'auth_failure_spike',
  versionMismatch: 'version_mismatch',
  connectivityLost: 'connectivity_lost',
  rateLimitStoreDegraded: 'rate_limit_store_degraded',
} as const;
export type AlertKind = (typeof AlertKind)[keyof typeof AlertKind];

export interface AlertingOptions {
  store: Store;
  logger: Logger;
  now?: () => number;
  /** The control plane's version: the reference of the version skew. */
  softwareVersion: string;
  /** Minor versions a gateway may be behind the control plane. Default 1. */
  supportedMinorsBehind?: number;
  /** Where alerts are POSTed (raised and resolved); none: alerts are only listed. */
  webhookUrl?: string;
  /** Webhook attempt timeout. Default 5 s. */
  webhookTimeoutMs?: number;
  /** Webhook attempts per alert state. Default 10. */
  webhookMaxAttempts?: number;
  /** First webhook retry delay (doubling). Default 1 s. */
  webhookRetryBaseMs?: number;
  /** Authentication failures per minute per gateway that raise `auth_failure_spike`. Default 20. */
  authFailureThreshold?: number;
  /** Silence after which a gateway's connectivity is lost. Default 60 s. */
  offlineAfterMs?: number;
  /**
   * How far back a rate-limit-store-degraded report keeps its alert open. Instances repeat the report every 15 s
   * while it lasts, so this is how long after recovery the alert resolves. Default 60 s.
   */
  storeDegradedWindowMs?: number;
  /** Every workspace is evaluated (and due webhooks retried) this often; 0: no timer. Default 15 s. */
  intervalMs?: number;
  /**
   * Where the destinations' webhook connections are made: the control plane's egress policy (`egressAgent`), since
   * workspace admins set those URLs. The operator's own `webhookUrl` is not bound by it.
   */
  destinationDispatcher?: Dispatcher;
}

export interface Alerting {
  /** Evaluates every alert condition of one workspace; calls for one workspace coalesce. Never rejects. */
  evaluate(workspaceId: string): Promise<void>;
  /** Evaluates every workspace (what the timer does): notices gateways gone silent and spikes that ended. */
  checkConnectivity(): Promise<void>;
  /** Attempts the due webhook deliveries now (otherwise after every change and on the timer). */
  deliver(): Promise<void>;
  close(): Promise<void>;
}

interface Condition {
  kind: AlertKind;
  gatewayId: string;
  /** True: raise (or keep) it; false: resolve it; undefined: leave it as it is. */
  active: boolean | undefined;
  message: string;
  details?: Record<string, unknown>;
}

export function startAlerting(options: AlertingOptions): Alerting {
  const { store, logger, softwareVersion } = options;
  const now = options.now ?? Date.now;
  const defaultThreshold = options.authFailureThreshold ?? 20;
  const offlineAfterMs = options.offlineAfterMs ?? 60_000;
  const storeDegradedWindowMs = options.storeDegradedWindowMs ?? 60_000;
  const minorsBehind = options.supportedMinorsBehind ?? 1;
  const intervalMs = options.intervalMs ?? 15_000;
  const webhook: WebhookDelivery | undefined = options.webhookUrl
    ? createWebhookDelivery({
        store,
        logger,
        url: options.webhookUrl,
        now,
        timeoutMs: options.webhookTimeoutMs,
        maxAttempts: options.webhookMaxAttempts,
        retryBaseMs: options.webhookRetryBaseMs,
      })
    : undefined;
  const destinations = createDestinationDelivery({
    store,
    logger,
    now,
    timeoutMs: options.webhookTimeoutMs,
    maxAttempts: options.webhookMaxAttempts,
    retryBaseMs: options.webhookRetryBaseMs,
    ...(options.destinationDispatcher !== undefined && { dispatcher: options.destinationDispatcher }),
  });
  const running = new Map<string, Promise<void>>();
  const queued = new Map<string, Promise<void>>();
  let closed = false;
  let sweep: Promise<void> | undefined;

  async function conditions(workspaceId: string, gateways: readonly GatewayRecord[]): Promise<Condition[]> {
    const t = now();
    const ruleThresholds = (await store.listAlertRules(workspaceId))
      .filter((r) => r.enabled && r.kind === AlertKind.authFailureSpike && r.threshold !== undefined)
      .map((r) => r.threshold!);
    const threshold = ruleThresholds.length > 0 ? Math.min(...ruleThresholds) : defaultThreshold;
    const since = nowIso(t - 60_000);
    const out: Condition[] = [];
    for (const gateway of [...gateways, undefined]) {
      const gatewayId = gateway?.id ?? CLOUD_GATEWAY_ID;
      const name = gateway?.name ?? CLOUD_GATEWAY_ID;
      const failures = await store.countSecurityEvents(workspaceId, {
        since,
        gatewayId,
        kind: SecurityEventKind.authFailure,
      });
      out.push({
        kind: AlertKind.authFailureSpike,
        gatewayId,
        active: failures >= threshold ? true : failures < threshold / 2 ? false : undefined,
        message: `${failures} authentication failures in the last minute on gateway "${name}" (threshold ${threshold} per minute)`,
        details: { failures, threshold, gatewayName: name },
      });
      if (gateway === undefined) continue;
      out.push(...instanceConditions(gateway, await store.listGatewayInstances(gateway.id), t));
      const reports = await store.countSecurityEvents(workspaceId, {
        since: nowIso(t - storeDegradedWindowMs),
        gatewayId,
        kind: SecurityEventKind.rateLimitStoreDegraded,
      });
      out.push({
        kind: AlertKind.rateLimitStoreDegraded,
        gatewayId,
        active: reports > 0,
        message: `rate-limit store degraded on gateway "${name}": its instances count rate limits locally (limits hold per instance; those with onStoreFailure: closed refuse with 503). See the instances' /readyz and logs.`,
        details: { gatewayName: name, reports, windowMs: storeDegradedWindowMs },
      });
    }
    return out;
  }

  function instanceConditions(
    gateway: GatewayRecord,
    instances: readonly GatewayInstanceRecord[],
    t: number,
  ): Condition[] {
    const fresh = (i: GatewayInstanceRecord) => t - Date.parse(i.lastSeenAt) < offlineAfterMs;
    const online = instances.filter((i) => i.connected && fresh(i));
    const outside = online.filter((i) => !isSupportedVersion(i.softwareVersion, softwareVersion, minorsBehind));
    const lastSeenAt = instances
      .map((i) => i.lastSeenAt)
      .sort()
      .at(-1);
    const versions = [...new Set(outside.map((i) => i.softwareVersion))].sort();
    return [
      {
        kind: AlertKind.versionMismatch,
        gatewayId: gateway.id,
        active: outside.length > 0,
        message: `gateway "${gateway.name}": ${outside.length} online instance(s) run ${versions.join(', ')}, outside the versions control plane ${softwareVersion} supports (same major, at most ${minorsBehind} minor behind)`,
        details: {
          gatewayName: gateway.name,
          controlPlaneVersion: softwareVersion,
          instances: outside.map((i) => ({ instanceId: i.instanceId, softwareVersion: i.softwareVersion })),
        },
      },
      {
        kind: AlertKind.connectivityLost,
        gatewayId: gateway.id,
        // Never had an instance: nothing was lost. Silent, but not for long enough yet: wait.
        active: online.length > 0 ? false : lastSeenAt !== undefined && !instances.some(fresh) ? true : undefined,
        message: `gateway "${gateway.name}" has no instance online: none heard from since ${lastSeenAt ?? 'never'}`,
        details: { gatewayName: gateway.name, lastSeenAt, offlineAfterMs },
      },
    ];
  }

  async function apply(workspaceId: string, condition: Condition): Promise<boolean> {
    if (condition.active === undefined) return false;
    const key = `${condition.kind}:${condition.gatewayId}`;
    const at = nowIso(now());
    const changed = await store.transaction(async (tx): Promise<AlertRecord | undefined> => {
      const open = await tx.getOpenAlert(workspaceId, key);
      if (condition.active && open === undefined) {
        const alert: AlertRecord = {
          id: `alt_${randomUUID().replaceAll('-', '')}`,
          workspaceId,
          gatewayId: condition.gatewayId,
          kind: condition.kind,
          key,
          message: condition.message,
          ...(condition.details ? { details: condition.details } : {}),
          raisedAt: at,
          deliveryAttempts: 0,
        };
        await tx.insertAlert(alert);
        await routeAlert(tx, alert, at);
        return alert;
      }
      if (!condition.active && open !== undefined) {
        // Resolving makes the alert due for delivery again, now with `resolvedAt`.
        const { deliveredAt: _delivered, ...rest } = open;
        const resolved: AlertRecord = { ...rest, resolvedAt: at, deliveryAttempts: 0 };
        await tx.updateAlert(resolved);
        await routeAlert(tx, resolved, at);
        return resolved;
      }
      return undefined;
    });
    if (changed === undefined) return false;
    const fields = { alert: changed.id, kind: changed.kind, workspace: workspaceId, gateway: changed.gatewayId };
    if (changed.resolvedAt === undefined) logger.warn({ ...fields, message: changed.message }, 'alert raised');
    else logger.info(fields, 'alert resolved');
    return true;
  }

  async function evaluateNow(workspaceId: string): Promise<void> {
    let changed = false;
    const gateways = await store.listGateways(workspaceId);
    for (const condition of await conditions(workspaceId, gateways))
      changed = (await apply(workspaceId, condition)) || changed;
    // Open alerts of gateways deleted since they were raised.
    const known = new Set([CLOUD_GATEWAY_ID, ...gateways.map((g) => g.id)]);
    for (const open of await store.listAlerts(workspaceId, { open: true })) {
      if (open.gatewayId === undefined || known.has(open.gatewayId)) continue;
      changed =
        (await apply(workspaceId, {
          kind: open.kind as AlertKind,
          gatewayId: open.gatewayId,
          active: false,
          message: open.message,
        })) || changed;
    }
    if (changed) {
      void webhook?.deliver();
      void destinations.deliver();
    }
  }

  function start(workspaceId: string): Promise<void> {
    const run = evaluateNow(workspaceId)
      .catch((err: unknown) => logger.error({ err, workspace: workspaceId }, 'evaluating alerts failed'))
      .finally(() => {
        if (running.get(workspaceId) === run) running.delete(workspaceId);
      });
    running.set(workspaceId, run);
    return run;
  }

  function evaluate(workspaceId: string): Promise<void> {
    if (closed) return Promise.resolve();
    const pending = queued.get(workspaceId);
    if (pending) return pending; // queued behind the running evaluation: it will see what happened meanwhile
    const current = running.get(workspaceId);
    if (!current) return start(workspaceId);
    const next = current.then(() => {
      queued.delete(workspaceId);
      return start(workspaceId);
    });
    queued.set(workspaceId, next);
    return next;
  }

  async function checkConnectivity(): Promise<void> {
    if (closed) return;
    try {
      for (const ws of await store.listWorkspaces()) await evaluate(ws.id);
    } catch (err) {
      logger.error({ err }, 'evaluating alerts failed');
    }
  }

  const timer =
    intervalMs > 0
      ? setInterval(() => {
          sweep ??= (async () => {
            await checkConnectivity();
            await webhook?.deliver();
            await destinations.deliver();
          })().finally(() => (sweep = undefined));
        }, intervalMs)
      : undefined;
  timer?.unref();

  return {
    evaluate,
    checkConnectivity,
    deliver: async () => {
      await webhook?.deliver();
      await destinations.deliver();
    },
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      await sweep;
      await Promise.all([...running.values(), ...queued.values()]);
      await webhook?.close();
      await destinations.close();
    },
  };
}
