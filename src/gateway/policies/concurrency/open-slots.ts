/**
 * Opening the concurrency-slot store `server.rateLimitStore` names: in process for `memory`, Redis leases for
 * `redis` (same URL, prefix, timeouts and `leaseTtl` as the rate-limit store, on a connection of its own).
 */
import type { Logger } from 'pino';
import { redactUrl } from '../../../config/redact-url.ts';
import type { RateLimitStoreSettings } from '../../../config/schema.ts';
import type { ConcurrencyStore } from '../../../shared/concurrency-store.ts';
import { createMemorySlots } from './memory-slots.ts';

/** While Redis fails, one log line per this period at most. */
const LOG_EVERY_MS = 30_000;

export async function openConcurrencyStore(
  settings: RateLimitStoreSettings,
  logger: Logger,
): Promise<ConcurrencyStore> {
  if (settings.type === 'memory') return createMemorySlots();
  const { createSharedSlots } = await import('./shared-slots.ts');
  let lastLogged = 0;
  return createSharedSlots({
    url: settings.url,
    prefix: settings.prefix,
    leaseTtlMs: settings.leaseTtl,
    commandTimeoutMs: settings.commandTimeout,
    connectTimeoutMs: settings.connectTimeout,
    onError: (error) => {
      const now = Date.now();
      if (now - lastLogged < LOG_EVERY_MS) return;
      lastLogged = now;
      logger.warn(
        { store: redactUrl(settings.url), error: error.message.slice(0, 200) },
        'concurrency store failing: open caps use a local share, closed caps refuse with 503',
      );
    },
  });
}
