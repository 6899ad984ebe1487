/**
 * Opening the quota store `server.rateLimitStore` names: in process for `memory` (one instance; counts end with
 * the process), leases of Redis for `redis` (leased-quotas.ts: same URL, timeouts and `leaseTtl` as the rate-limit
 * store, keys under its prefix + `q:`, on a connection of its own). Its state is the readiness check `quotaStore` (`degraded`, never `failing`, while Redis
 * does not answer) and a log line at every change.
 */
import type { Logger } from 'pino';
import { redactUrl } from '../../../config/redact-url.ts';
import type { RateLimitStoreSettings } from '../../../config/schema.ts';
import type { QuotaStore } from '../../../shared/quota-store.ts';
import type { ReadinessCheck } from '../../readiness.ts';
import { createMemoryQuotas } from './memory-quotas.ts';

export async function openQuotaStore(
  settings: RateLimitStoreSettings,
  logger: Logger,
  setCheck: (check: ReadinessCheck) => void,
): Promise<QuotaStore> {
  if (settings.type === 'memory') return createMemoryQuotas();
  const { createLeasedQuotas } = await import('./leased-quotas.ts');
  const where = redactUrl(settings.url);
  setCheck({ status: 'degraded', detail: `connecting to ${where}` });
  return createLeasedQuotas({
    url: settings.url,
    prefix: `${settings.prefix}q:`,
    leaseTtlMs: settings.leaseTtl,
    commandTimeoutMs: settings.commandTimeout,
    connectTimeoutMs: settings.connectTimeout,
    onStateChange: (state) => {
      if (state.status === 'degraded') {
        setCheck({
          status: 'degraded',
          detail: `${where}: ${state.reason}; open quotas are counted on this instance and added to Redis once it answers, closed ones refuse with 503`,
        });
        logger.warn({ store: where, reason: state.reason }, 'quota store degraded: open quotas are counted locally');
      } else if (state.status === 'ok') {
        setCheck({ status: 'ok', detail: `${where}: leases of ${settings.leaseTtl}ms` });
        logger.info({ store: where }, 'quota store connected');
      }
    },
  });
}
