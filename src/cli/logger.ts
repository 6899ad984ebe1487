import pino, { type Logger } from 'pino';

/** Structured JSON logs on stdout. Secrets never reach a log line: keys are logged by label, tokens never. */
export function createLogger(level: string): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization', 'headers["x-api-key"]'], censor: '[redacted]' },
    },
    pino.destination({ dest: 1, sync: false }),
  );
}
