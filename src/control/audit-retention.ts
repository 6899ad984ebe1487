/**
 * Audit log retention: entries older than the retention (control-plane setting `auditRetentionDays`, default 90)
 * are deleted at start and then on a timer (hourly by default), and so are the alerts resolved before it, with
 * their webhook deliveries (the alert history is read like the audit log, and would otherwise grow for ever). Open
 * alerts stay however old. With several replicas each prunes; the deletes are idempotent.
 */
import type { Logger } from 'pino';
import { nowIso } from './ids.ts';
import type { Store } from './store/store.ts';

export const DEFAULT_AUDIT_RETENTION_DAYS = 90;
const DAY_MS = 86_400_000;

export interface AuditRetention {
  /** Prunes now; resolves with how many entries went. */
  prune(): Promise<number>;
  close(): Promise<void>;
}

export function startAuditRetention(options: {
  store: Pick<Store, 'pruneAuditLog' | 'pruneResolvedAlerts'>;
  logger: Logger;
  now: () => number;
  retentionDays?: number;
  intervalMs?: number;
}): AuditRetention {
  const { store, logger, now } = options;
  const retentionMs = (options.retentionDays ?? DEFAULT_AUDIT_RETENTION_DAYS) * DAY_MS;
  let running: Promise<number> | undefined;
  const prune = async (): Promise<number> => {
    const before = nowIso(now() - retentionMs);
    const removed = await store.pruneAuditLog(before);
    if (removed > 0) logger.info({ removed, retentionDays: retentionMs / DAY_MS }, 'pruned the audit log');
    const alerts = await store.pruneResolvedAlerts(before);
    if (alerts > 0)
      logger.info({ alerts, retentionDays: retentionMs / DAY_MS }, 'pruned alerts resolved before the retention');
    return removed;
  };
  const tick = () => {
    running = prune().catch((err: unknown) => {
      logger.error({ err }, 'pruning the audit log failed');
      return 0;
    });
  };
  tick();
  const timer = setInterval(tick, options.intervalMs ?? 3600_000);
  timer.unref();
  return {
    prune,
    async close() {
      clearInterval(timer);
      await running;
    },
  };
}
