import pino, { type Logger } from 'pino';
import { ServerSchema } from '../config/schema.ts';
import { LogSink } from '../gateway/observability/log-sink.ts';
import { UsageError } from './command.ts';

/** The levels `--log-level` takes: the config file's `server.log.level` ones. */
export const LOG_LEVELS: readonly string[] = ServerSchema.shape.log.unwrap().shape.level.unwrap().options;

/** A `--log-level` value, checked here because pino throws (with a stack trace) on a level it does not know. */
export function logLevelOption(command: string, value: string): string {
  if (!LOG_LEVELS.includes(value))
    throw new UsageError(`${command}: --log-level must be one of ${LOG_LEVELS.join(', ')}, got "${value}"`);
  return value;
}

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
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers["x-api-key"]',
          'headers.authorization',
          'headers["x-api-key"]',
        ],
        censor: '[redacted]',
      },
    },
    sink,
  );
  process.once('exit', () => sink.flushSync());
  return logger;
}
