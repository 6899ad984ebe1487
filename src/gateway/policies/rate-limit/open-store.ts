/**
 * Opening the rate-limit store `server.rateLimitStore` names: the in-process one, or the shared one on Redis with
 * its degraded state made visible (readiness check, metrics, log lines, a telemetry event).
 */
import type { Logger } from 'pino';
import { redactUrl } from '../../../config/redact-url.ts';
import type { RateLimitStoreSettings } from '../../../config/schema.ts';
import type { RateLimitStore } from '../../../shared/rate-limit-store.ts';
import { channels, type RateLimitStoreStateEvent } from '../../observability/channels.ts';
import type { GatewayMetrics } from '../../observability/metrics.ts';
import type { ReadinessCheck } from '../../readiness.ts';
import { createMemoryStore } from './memory-store.ts';
import type { SharedStoreOptions } from './shared-store.ts';

/** What the instance gives the rate-limit store's owner: its readiness check, and its API server for events. */
export interface RateLimitStoreHooks {
  setCheck(check: ReadinessCheck): void;
  server(): object | undefined;
}

/** While degraded, the state is logged again at most this often (with the errors since), and re-announced to telemetry. */
const DEGRADED_LOG_EVERY_MS = 30_000;
const DEGRADED_EVENT_EVERY_MS = 15_000;

/**
 * The rate-limit store `server.rateLimitStore` names. A shared store's state is made visible four ways: the
 * readiness check `rateLimitStore` (`degraded` while it counts locally: never `failing`, since taking every
 * instance out of the load balancer because Redis is down would turn a weaker limit into an outage), the gauge
 * `gatehouse_rate_limit_store_degraded` and the counter `gatehouse_rate_limit_store_errors_total{kind}`, a log
 * line at every change (and every 30 s while it lasts, with the URL's password masked), and a diagnostics-channel
 * event that telemetry carries to the control plane's alerting.
 */
export async function openRateLimitStore(
  settings: RateLimitStoreSettings,
  logger: Logger,
  metrics: GatewayMetrics,
  hooks: RateLimitStoreHooks,
): Promise<RateLimitStore> {
  if (settings.type === 'memory') return createMemoryStore();
  // Loaded only when configured: a gateway without Redis never loads the client.
  const { createSharedStore, storeErrorKind } = await import('./shared-store.ts');
  const { createLeaseStore } = await import('./lease-store.ts');
  const where = redactUrl(settings.url);
  const fields = {
    store: where,
    prefix: settings.prefix,
    mode: settings.mode,
    ...(settings.mode === 'lease' ? { leaseTtlMs: settings.leaseTtl } : { syncIntervalMs: settings.syncInterval }),
    commandTimeoutMs: settings.commandTimeout,
  };
  const whileDegraded =
    'counting locally until it answers: limits hold per instance, and limits with onStoreFailure: closed refuse with 503';
  let lastLogged = 0;
  let lastEvent = 0;
  let errorsSinceLog = 0;
  let connectedOnce = false;
  const publish = (status: 'ok' | 'degraded', reason: string | undefined, since: number) => {
    if (channels.rateLimitStore.hasSubscribers)
      channels.rateLimitStore.publish({
        server: hooks.server(),
        status,
        reason,
        since,
      } satisfies RateLimitStoreStateEvent);
  };
  hooks.setCheck({
    status: 'degraded',
    detail: `connecting to ${where}; limits are counted on this instance alone until it answers`,
  });
  const open = (hooks: Pick<SharedStoreOptions, 'onConnect' | 'onStateChange' | 'onError'>) =>
    settings.mode === 'lease'
      ? createLeaseStore({
          url: settings.url,
          prefix: settings.prefix,
          leaseTtlMs: settings.leaseTtl,
          commandTimeoutMs: settings.commandTimeout,
          connectTimeoutMs: settings.connectTimeout,
          ...hooks,
        })
      : createSharedStore({
          url: settings.url,
          prefix: settings.prefix,
          syncIntervalMs: settings.syncInterval,
          commandTimeoutMs: settings.commandTimeout,
          connectTimeoutMs: settings.connectTimeout,
          ...hooks,
        });
  const store = open({
    onConnect: () => {
      logger.info(fields, connectedOnce ? 'rate-limit store reconnected' : 'rate-limit store connected');
      connectedOnce = true;
    },
    onStateChange: (state) => {
      const now = Date.now();
      if (state.status === 'degraded') {
        metrics.rateLimitStoreDegraded.set(1);
        hooks.setCheck({
          status: 'degraded',
          detail: `${where}: ${state.reason} (since ${new Date(state.since).toISOString()}); ${whileDegraded}`,
        });
        logger.warn(
          { ...fields, reason: state.reason, kind: state.kind },
          `rate-limit store degraded: ${whileDegraded}`,
        );
        lastLogged = now;
        lastEvent = now;
        errorsSinceLog = 0;
        publish('degraded', state.reason, state.since);
      } else if (state.status === 'ok') {
        metrics.rateLimitStoreDegraded.set(0);
        hooks.setCheck({
          status: 'ok',
          detail:
            settings.mode === 'lease'
              ? `${where}: leases of ${settings.leaseTtl}ms`
              : `${where}: synced every ${settings.syncInterval}ms`,
        });
        if (lastLogged > 0) {
          logger.info(
            { ...fields, degradedMs: now - lastLogged },
            'rate-limit store recovered: limits are shared again',
          );
          publish('ok', undefined, state.since);
        }
        lastLogged = 0;
      }
    },
    onError: (error) => {
      metrics.rateLimitStoreErrors.labels(storeErrorKind(error)).inc();
      errorsSinceLog++;
      const state = store.state();
      if (state.status !== 'degraded') return;
      const now = Date.now();
      if (now - lastEvent >= DEGRADED_EVENT_EVERY_MS) {
        lastEvent = now;
        publish('degraded', state.reason, state.since);
      }
      if (now - lastLogged >= DEGRADED_LOG_EVERY_MS) {
        logger.warn(
          {
            ...fields,
            reason: state.reason,
            error: error.message,
            errors: errorsSinceLog,
            degradedMs: now - state.since,
          },
          `rate-limit store still degraded: ${whileDegraded}`,
        );
        lastLogged = now;
        errorsSinceLog = 0;
      }
    },
  });
  return store;
}
