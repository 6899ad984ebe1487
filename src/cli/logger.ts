import pino, { type Logger } from 'pino';
import { LogSink } from '../gateway/observability/log-sink.ts';

/**
 * Structured JSON logs on stdout through one batched LogSink (the access log writes to the same sink, so lines
 * stay in order). Secrets never reach a log line: keys are logged by label, tokens never.
 */
export function createLogger(level: string): Logger {
  const sink = new LogSink({ fd: 1 });
  const logger = pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization', 'headers["x-api-key"]'], censor: '[redacted]' },
    },
    sink,
  );
  process.once('exit', () => sink.flushSync());
  return logger;
}
