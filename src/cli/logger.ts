import pino, { type Logger } from 'pino';

/**
 * Structured JSON logs on stdout. Secrets never reach a log line: keys are logged by label, tokens never.
 *
 * Lines are buffered (up to 4 KiB) and flushed at least every 100 ms, so an access log line costs no system call
 * of its own at high request rates; times are epoch milliseconds (pino's default, cheaper than ISO strings).
 */
export function createLogger(level: string): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  const logger = pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization', 'headers["x-api-key"]'], censor: '[redacted]' },
    },
    destination,
  );
  setInterval(() => destination.flush(), 100).unref();
  process.once('exit', () => {
    try {
      destination.flushSync();
    } catch {
      // stdout already closed
    }
  });
  return logger;
}
